"""The FileSummary of the cell-mean baseline without its cells: ranked in closed form.

Every perturbed cell of the baseline (`baseline.assemble_baseline`) holds the same profile, so a
perturbation's n cells are n copies of one value per gene. Their rank sums against the control
follow from where that one value falls among the control values: rank the controls together with
one cell holding the profile, then multiply. The result is the summary of the assembled
[cells, genes] matrix (4.3 GB dense at the VCC validation shape) without building it, and with
the work of ranking the controls alone.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from vccjax.metrics import baseline, evaluate, ranksum


def _tie_term(t: np.ndarray) -> np.ndarray:
  return t * t * t - t


def summarize_cell_mean_baseline(*, profile: np.ndarray, control_log1p,
                                 pert_counts: Mapping[str, int],
                                 control_label: str = baseline.CONTROL_LABEL
                                 ) -> evaluate.FileSummary:
  """`evaluate.summarize` of the baseline `assemble_baseline` would build, without its cells.

  Args:
    profile: [genes] float32 baseline log1p profile (`baseline.mean_of_pseudobulks`).
    control_log1p: [controls, genes] VCC-scaled log1p training control cells (dense or CSR),
      or a list of blocks of their rows (never stacked).
    pert_counts: perturbation -> number of cells (a `control_label` entry is ignored).
    control_label: label of control cells.

  Returns:
    FileSummary over the perturbations of `pert_counts`, sorted by name.
  """
  counts = baseline.perturbation_cell_counts(pert_counts, control_label=control_label)
  perturbations = sorted(counts)
  n_cells = np.array([counts[p] for p in perturbations], np.float64)  # [P]
  profile = np.asarray(profile, np.float32)
  blocks = ranksum.row_blocks(control_log1p)
  n_controls = sum(block.shape[0] for block in blocks)
  group = np.r_[np.zeros(n_controls, np.int64), 1]
  sums = ranksum.rank_sums(log1p_expr=[*blocks, sp.csr_matrix(profile[None, :])], group=group,
                           n_groups=2)
  # The one cell's sums, for each of a perturbation's n identical cells: [genes, P].
  nonzero = sums.nonzero[:, 1:] * n_cells
  at_or_below = sums.control_at_or_below[:, 1:] * n_cells
  equal = sums.control_equal[:, 1:] * n_cells
  # A run of c equal control values joined by n copies of the profile: f(c + n) - f(c); the
  # profile's value is in no run (nonzero = 0) where it is 0.
  c = sums.control_equal[:, 1:]
  ties = np.where(sums.nonzero[:, 1:] > 0, _tie_term(c + n_cells) - _tie_term(c), 0.0)
  # n x a float32 value is exact in float64 (as the sum of its n copies is)
  value_sums = sums.value_sums[:, 1:] * n_cells
  full = ranksum.GroupRankSums(
      group_sizes=np.r_[sums.group_sizes[0], n_cells.astype(np.int64)],
      nonzero=np.column_stack([sums.nonzero[:, 0], nonzero]),
      control_at_or_below=np.column_stack([sums.control_at_or_below[:, 0], at_or_below]),
      control_equal=np.column_stack([sums.control_equal[:, 0], equal]),
      tie_terms=np.column_stack([sums.tie_terms[:, 0], ties]),
      value_sums=np.column_stack([sums.value_sums[:, 0], value_sums]))
  return evaluate.summary_of_rank_sums(perturbations, full)
