"""Perturbation discrimination score (PDS) and pseudobulk MAE, as cell-eval computes them.

PDS (`discrimination_score_l1`): each perturbation's predicted effect (pseudobulk minus the
predicted file's control pseudobulk) is compared by L1 distance, over all genes but the
perturbation's own target gene, with the true effect of every perturbation; the score is
1 - rank / N, the rank being the 0-based position of the right perturbation among the N
distances sorted ascending (equal distances keep perturbation order, as NumPy's sort does for
the small N of VCC). Pseudobulks are float32, as polars averages float32 columns; distances are
float64, as scipy's `cdist` computes them.

MAE (`mae`): mean over genes of |predicted - true| pseudobulk, per perturbation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def discrimination_scores(*, real_effect, pred_effect, target_gene_index) -> np.ndarray:
  """PDS of each perturbation.

  Args:
    real_effect: [perturbations, genes] true pseudobulk minus true control pseudobulk.
    pred_effect: [perturbations, genes] predicted pseudobulk minus predicted control pseudobulk.
    target_gene_index: [perturbations] column of each perturbation's target gene, -1 if the
      target is not among the genes (nothing excluded).

  Returns:
    [perturbations] float64 scores in (0, 1].
  """
  with jax.enable_x64(True):
    return np.asarray(_pds(jnp.asarray(real_effect, jnp.float64),
                           jnp.asarray(pred_effect, jnp.float64),
                           jnp.asarray(target_gene_index, jnp.int64)))


@jax.jit
def _pds(real_effect, pred_effect, target):
  n_perts, n_genes = real_effect.shape

  def distances(args):  # one perturbation at a time: [P, G] memory, not [P, P, G]
    pred, t = args
    keep = jnp.arange(n_genes) != t
    return jnp.sum(jnp.where(keep, jnp.abs(real_effect - pred), 0.0), axis=1)

  dist = jax.lax.map(distances, (pred_effect, target))    # [P (pred), P (real)]
  own = jnp.diagonal(dist)[:, None]
  earlier = jnp.arange(n_perts)[None, :] < jnp.arange(n_perts)[:, None]
  rank = jnp.sum((dist < own) | ((dist == own) & earlier), axis=1)
  return 1.0 - rank / n_perts


def mean_absolute_error(*, real_pseudobulk, pred_pseudobulk) -> np.ndarray:
  """MAE of each perturbation's pseudobulk. Inputs: [perturbations, genes] -> [perturbations]."""
  with jax.enable_x64(True):
    diff = jnp.abs(jnp.asarray(pred_pseudobulk, jnp.float32)
                   - jnp.asarray(real_pseudobulk, jnp.float32))
    return np.asarray(jnp.mean(diff.astype(jnp.float64), axis=1))
