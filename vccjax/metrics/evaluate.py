"""The VCC evaluation of predicted against real cells: DES, PDS and MAE per perturbation.

`evaluate` reproduces `cell-eval run --profile vcc` (cell-eval 0.6.6 + pdex 0.1.27, the VCC 2025
rules, by default) on log1p arrays that are already on the VCC scale (`scale.to_vcc_log1p`).
Each file is summarised on its own (`summarize`: pseudobulks and Wilcoxon p-values against its
own controls), so a caller short of memory can load, summarise and drop one file at a time, then
`compare` the two summaries.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import numpy as np

from vccjax.errors import InputError
from vccjax.metrics import des, fdr as fdr_lib, pds, ranksum, wilcoxon
from vccjax.metrics.scratch import ScratchPool

CONTROL_LABEL = "non-targeting"
FDR_MODES = ("global", "per_perturbation")


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """Per-perturbation VCC scores, perturbations sorted by name (cell-eval's order).

  Attributes:
    perturbations: [P] names.
    des, pds, mae: [P] float64 scores.
    n_true_de, n_pred_de: [P] number of genes with FDR < 0.05 in the real / predicted cells.
  """
  perturbations: list[str]
  des: np.ndarray
  pds: np.ndarray
  mae: np.ndarray
  n_true_de: np.ndarray
  n_pred_de: np.ndarray

  def means(self) -> dict:
    """{"des", "pds", "mae"}: the means over perturbations cell-eval aggregates and scores."""
    return {"des": float(np.mean(self.des)), "pds": float(np.mean(self.pds)),
            "mae": float(np.mean(self.mae))}

  def table(self) -> list[dict]:
    """One dict per perturbation: name, des, pds, mae, n_true_de, n_pred_de."""
    return [{"perturbation": p, "des": float(self.des[i]), "pds": float(self.pds[i]),
             "mae": float(self.mae[i]), "n_true_de": int(self.n_true_de[i]),
             "n_pred_de": int(self.n_pred_de[i])} for i, p in enumerate(self.perturbations)]


@dataclasses.dataclass(frozen=True)
class FileSummary:
  """What scoring needs of one file.

  Attributes:
    perturbations: [P] sorted perturbation names.
    pseudobulk: [P + 1, genes] float64 mean log1p expression, control last.
    p_value: [P, genes] float64 Wilcoxon p-values against the file's own controls.
  """
  perturbations: list[str]
  pseudobulk: np.ndarray
  p_value: np.ndarray
  _adjusted: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

  def adjusted_p(self, fdr: str) -> np.ndarray:
    """[P, genes] BH-adjusted p-values under the `fdr` mode (see `compare`), computed once per
    mode: the real file's serve both the model's and the baseline's comparison."""
    if fdr not in self._adjusted:
      self._adjusted[fdr] = fdr_lib.benjamini_hochberg(self.p_value,
                                                       per_row=fdr == "per_perturbation")
    return self._adjusted[fdr]


def _perturbation_groups(targets, *, control_label: str = CONTROL_LABEL,
                        where: str = "expression") -> tuple[list[str], np.ndarray]:
  """(sorted perturbation names, [cells] group: 0 for controls, 1 + index of the perturbation).

  Raises:
    InputError: no control cells, or no perturbed ones.
  """
  targets = np.asarray(targets).astype(str)
  is_control = targets == control_label
  if not is_control.any():
    raise InputError(where, f"no control cells labelled '{control_label}'",
                     "add control cells or pass the right control label")
  perturbations = sorted(set(targets[~is_control].tolist()))
  if not perturbations:
    raise InputError(where, "no perturbed cells, only controls", "add perturbed cells")
  group = np.where(is_control, 0, np.searchsorted(np.array(perturbations), targets) + 1)
  return perturbations, group


def summary_of_rank_sums(perturbations: list[str], sums: ranksum.GroupRankSums) -> FileSummary:
  """The FileSummary of a file whose groups (`_perturbation_groups`) were ranked into `sums`."""
  _, p_value = wilcoxon.mannwhitney_vs_control(sums=sums)
  means = sums.value_sums.T / sums.group_sizes[:, None]
  return FileSummary(perturbations, np.concatenate([means[1:], means[:1]]), p_value)


def summarize(*, log1p_expr, targets, control_label: str = CONTROL_LABEL,
              where: str = "expression") -> FileSummary:
  """Pseudobulks and Wilcoxon tests of one file held in memory.

  Args:
    log1p_expr: [cells, genes] float32 VCC-scaled log1p expression, dense or scipy sparse.
    targets: [cells] perturbation of each cell, `control_label` for controls.
    control_label: label of the control cells.
    where: name for error messages.
  """
  if len(targets) != log1p_expr.shape[0]:
    raise InputError(where, f"{len(targets)} target labels for {log1p_expr.shape[0]} cells",
                     "give one target label per cell")
  perturbations, group = _perturbation_groups(targets, control_label=control_label, where=where)
  sums = ranksum.rank_sums(log1p_expr=log1p_expr, group=group, n_groups=len(perturbations) + 1)
  return summary_of_rank_sums(perturbations, sums)


def summarize_chunks(*, chunks: Iterable[tuple[int, Any]], targets, n_genes: int,
                     value_bounds: tuple[float, float], control_label: str = CONTROL_LABEL,
                     where: str = "expression", buffers: ScratchPool | None = None,
                     n_values: int | None = None) -> FileSummary:
  """`summarize` of a file read one row chunk at a time (it never is in memory as a whole).

  Args:
    chunks: (start row, [rows, genes] float32 CSR VCC-scaled log1p) pairs covering the file,
      or (0, `ranksum.GeneBlockReader`) pairs, blocks of genes of every cell covering it.
    targets: [cells] perturbation of each cell of the file, `control_label` for controls.
    n_genes: genes of the file.
    value_bounds: (low, high) bounds on the file's positive log1p values
      (`ScalePlan.log1p_bounds`).
    control_label: label of the control cells.
    where: name for error messages.
    buffers, n_values: as `ranksum.rank_sums_of_chunks` takes them (reuse of buffers from one
      file to the next).
  """
  perturbations, group = _perturbation_groups(targets, control_label=control_label, where=where)
  n_groups = len(perturbations) + 1
  sums = ranksum.rank_sums_of_chunks(
      chunks=((group[start:start + chunk.shape[0]], chunk) for start, chunk in chunks),
      n_genes=n_genes, n_groups=n_groups,
      key_format=ranksum.KeyFormat.for_values(low=value_bounds[0], high=value_bounds[1],
                                              n_groups=n_groups),
      buffers=buffers, n_values=n_values)
  return summary_of_rank_sums(perturbations, sums)


def compare(*, real: FileSummary, pred: FileSummary, gene_names: Sequence[str] | None = None,
            fdr: str = "global", fold_change_clip: float | None = 20.0) -> EvalResult:
  """Scores a predicted file's summary against the real one's.

  Args:
    real, pred: `summarize` of the real and of the predicted file.
    gene_names: [genes] gene symbols, to leave each perturbation's target gene out of PDS (as
      cell-eval does); None leaves no gene out.
    fdr: "global": one Benjamini-Hochberg family over all (perturbation, gene) tests (pdex 0.1,
      the VCC 2025 rule); "per_perturbation": one family per perturbation (cell-eval >= 0.7).
    fold_change_clip: 20 (pdex 0.1) or None (pdex >= 0.2): see `des.abs_log2_fold_change`.
  """
  if fdr not in FDR_MODES:
    raise InputError("fdr", f"unknown mode '{fdr}'", f"use one of {FDR_MODES}")
  if real.perturbations != pred.perturbations:
    only_real = sorted(set(real.perturbations) - set(pred.perturbations))[:5]
    only_pred = sorted(set(pred.perturbations) - set(real.perturbations))[:5]
    raise InputError("perturbations", f"real and predicted perturbations differ (only real: "
                     f"{only_real}, only predicted: {only_pred})",
                     "predict every real perturbation and no other")
  if real.pseudobulk.shape[1] != pred.pseudobulk.shape[1]:
    raise InputError("genes", f"{real.pseudobulk.shape[1]} real genes vs "
                     f"{pred.pseudobulk.shape[1]} predicted",
                     "use the same genes in the same order")
  real_fdr, pred_fdr = real.adjusted_p(fdr), pred.adjusted_p(fdr)
  real_pb, pred_pb = (s.pseudobulk.astype(np.float32) for s in (real, pred))
  abs_lfc = des.abs_log2_fold_change(pert_mean_log1p=pred_pb[:-1],
                                     control_mean_log1p=pred_pb[-1], clip=fold_change_clip)
  overlap, n_true, n_pred = des.de_overlap(true_fdr=real_fdr, pred_fdr=pred_fdr,
                                           pred_abs_lfc=abs_lfc)
  column = {g: i for i, g in enumerate(gene_names)} if gene_names is not None else {}
  target_index = np.array([column.get(p, -1) for p in real.perturbations])
  discrimination = pds.discrimination_scores(real_effect=real_pb[:-1] - real_pb[-1],
                                             pred_effect=pred_pb[:-1] - pred_pb[-1],
                                             target_gene_index=target_index)
  mae = pds.mean_absolute_error(real_pseudobulk=real_pb[:-1], pred_pseudobulk=pred_pb[:-1])
  return EvalResult(list(real.perturbations), overlap, discrimination, mae, n_true, n_pred)


def evaluate(*, real_log1p, real_targets, pred_log1p, pred_targets,
             control_label: str = CONTROL_LABEL, fdr: str = "global",
             gene_names: Sequence[str] | None = None,
             fold_change_clip: float | None = 20.0) -> EvalResult:
  """DES, PDS and MAE of predicted against real cells, as `cell-eval run --profile vcc`.

  Args:
    real_log1p: [real cells, genes] float32 VCC-scaled log1p expression (numpy or scipy CSR).
    real_targets: [real cells] perturbation of each cell (str), `control_label` for controls.
    pred_log1p: [predicted cells, genes] float32 VCC-scaled log1p expression.
    pred_targets: [predicted cells] perturbation of each predicted cell.
    control_label: label of control cells (both files need some).
    fdr: "global" (VCC 2025) or "per_perturbation" (cell-eval >= 0.7), see `compare`.
    gene_names: [genes] symbols; without them PDS keeps each target gene (cell-eval drops it).
    fold_change_clip: 20 (VCC 2025) or None (cell-eval >= 0.7), see `compare`.

  Returns:
    EvalResult over the perturbations (sorted names).
  """
  if real_log1p.shape[1] != pred_log1p.shape[1]:
    raise InputError("pred_log1p", f"{pred_log1p.shape[1]} genes, real has "
                     f"{real_log1p.shape[1]}", "predict the real file's genes, in its order")
  real = summarize(log1p_expr=real_log1p, targets=real_targets, control_label=control_label,
                   where="real")
  pred = summarize(log1p_expr=pred_log1p, targets=pred_targets, control_label=control_label,
                   where="pred")
  return compare(real=real, pred=pred, gene_names=gene_names, fdr=fdr,
                 fold_change_clip=fold_change_clip)
