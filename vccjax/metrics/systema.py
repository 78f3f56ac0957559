"""A Systema-style view (Vinas Torne et al. 2025): effects relative to the perturbation centroid.

Much of what a model "predicts" can be the shift every perturbed cell shares. Measured against
the centroid of the perturbations (the mean pseudobulk of the training perturbations), only what
is specific to each target remains, and a prediction of the shared shift scores at chance:

* `pds_centroid`: like PDS, 1 - rank / N of the right perturbation among all N true ones, but by
  the cosine similarity of centroid-relative effects (L1 distances, which PDS uses, do not change
  when both sides move by the same centroid, so they cannot tell the two views apart). Each
  perturbation's target gene is left out, as in PDS. 1 is best, chance about 0.5.
* `pearson_centred`: Pearson correlation of the predicted and true centroid-relative pseudobulk
  on the true top DE genes (the `top_n` smallest Wilcoxon p-values against controls, target
  gene left out); 0 when either side is constant there.
"""

from __future__ import annotations

import numpy as np

TOP_DE = 20
METRICS = ("pds_centroid", "pearson_centred")


def centroid_scores(*, real_pseudobulk, pred_pseudobulk, centroid, real_p_value,
                    target_gene_index, top_n: int = TOP_DE) -> dict[str, np.ndarray]:
  """Per-perturbation centroid-relative scores.

  Args:
    real_pseudobulk, pred_pseudobulk: [P, G] mean log1p expression of each perturbation.
    centroid: [G] mean log1p pseudobulk of the reference perturbations (training targets).
    real_p_value: [P, G] Wilcoxon p-values of the real cells against controls.
    target_gene_index: [P] column of each perturbation's target gene, -1 if not measured.
  Returns:
    {"pds_centroid": [P], "pearson_centred": [P]} float64.
  """
  real = np.asarray(real_pseudobulk, np.float64) - centroid
  pred = np.asarray(pred_pseudobulk, np.float64) - centroid
  n_perts, n_genes = real.shape
  pds_centroid = np.empty(n_perts)
  pearson = np.zeros(n_perts)
  for i in range(n_perts):
    keep = np.arange(n_genes) != target_gene_index[i]
    sim = np.array([_cosine(pred[i, keep], real[j, keep]) for j in range(n_perts)])
    # Ties rank the right perturbation after the ones listed before it (as PDS does).
    rank = np.sum(sim > sim[i]) + np.sum(sim[:i] == sim[i])
    pds_centroid[i] = 1.0 - rank / n_perts
    p = np.where(keep, real_p_value[i], np.inf)
    top = np.argsort(p, kind="stable")[:min(top_n, int(keep.sum()))]
    pearson[i] = _pearson(pred[i, top], real[i, top])
  return {"pds_centroid": pds_centroid, "pearson_centred": pearson}


def _cosine(a, b) -> float:
  denom = np.linalg.norm(a) * np.linalg.norm(b)
  return float(a @ b / denom) if denom > 0 else 0.0


def _pearson(a, b) -> float:
  a, b = a - a.mean(), b - b.mean()
  return _cosine(a, b)
