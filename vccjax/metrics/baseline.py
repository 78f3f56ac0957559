"""The cell-mean baseline prediction of `cell-eval baseline` (what the VCC scores are scaled by).

cell-eval's `build_base_mean_adata`: the pseudobulk (mean log1p) of every group of the training
cells, controls included, is averaged into one expression profile; every predicted cell of every
perturbation is that profile, `n_cells` of them per perturbation of the counts table (in its
order, the control row dropped), followed by all the training control cells as the controls.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from vccjax.errors import InputError
from vccjax.metrics import pseudobulk

CONTROL_LABEL = "non-targeting"


def mean_of_pseudobulks(group_means: np.ndarray) -> np.ndarray:
  """[groups, genes] pseudobulks (controls included) -> [genes] float32 baseline profile.

  polars averages each group's float32 cells to float32; cell-eval then averages those rows in
  float32.
  """
  return np.asarray(group_means).astype(np.float32).mean(axis=0, dtype=np.float32)


def perturbation_cell_counts(pert_counts: Mapping[str, int], *,
                             control_label: str = CONTROL_LABEL) -> dict[str, int]:
  """{perturbation: n_cells} of a `pert_counts` table, in its order, its control row dropped.

  Raises:
    InputError: no perturbation, or one with n_cells <= 0.
  """
  counts = {str(p): int(n) for p, n in pert_counts.items() if p != control_label}
  if not counts or min(counts.values()) <= 0:
    raise InputError("pert_counts", "needs at least one perturbation, each with n_cells > 0",
                     "use a VCC pert_counts table: target_gene,n_cells")
  return counts


def assemble_baseline(*, profile: np.ndarray, control_log1p, pert_counts: Mapping[str, int],
                      control_label: str = CONTROL_LABEL) -> tuple[np.ndarray, np.ndarray]:
  """The baseline's cells: `profile` [genes] n_cells times per perturbation, then the controls.

  Args:
    profile: [genes] baseline log1p profile (`mean_of_pseudobulks`).
    control_log1p: [controls, genes] VCC-scaled log1p training control cells.
    pert_counts: perturbation -> number of cells (a VCC `pert_counts` table, in its order; a
      `control_label` entry is ignored).
    control_label: label of control cells.

  Returns:
    (log1p [cells, genes] float32 dense, targets [cells] str).
  """
  counts = list(perturbation_cell_counts(pert_counts, control_label=control_label).items())
  controls = control_log1p.toarray() if sp.issparse(control_log1p) else control_log1p
  n_pred = sum(n for _, n in counts)
  log1p = np.empty((n_pred + controls.shape[0], len(profile)), np.float32)
  log1p[:n_pred] = profile
  log1p[n_pred:] = controls
  targets = np.concatenate([np.repeat([p for p, _ in counts], [n for _, n in counts]),
                            np.full(controls.shape[0], control_label)])
  return log1p, targets


def cell_mean_baseline(*, train_log1p, train_targets, pert_counts: Mapping[str, int],
                       control_label: str = CONTROL_LABEL) -> tuple[np.ndarray, np.ndarray]:
  """The baseline's predicted cells, as `cell-eval baseline` builds them from training cells.

  Args:
    train_log1p: [train cells, genes] VCC-scaled log1p expression of the training cells.
    train_targets: [train cells] perturbation of each training cell (`control_label` controls).
    pert_counts: perturbation -> number of cells to predict (a VCC `pert_counts` table).
    control_label: label of control cells.

  Returns:
    (log1p [cells, genes] float32 dense, targets [cells] str): the mean of the training
    pseudobulks repeated for each perturbation, then the training controls.
  """
  train_targets = np.asarray(train_targets).astype(str)
  is_control = train_targets == control_label
  if not is_control.any():
    raise InputError("train_targets", f"no control cells labelled '{control_label}'",
                     "the baseline needs the training controls")
  names, group = np.unique(train_targets, return_inverse=True)
  means = pseudobulk.group_means(log1p_expr=train_log1p, group=group, n_groups=len(names))
  return assemble_baseline(profile=mean_of_pseudobulks(means),
                           control_log1p=train_log1p[np.flatnonzero(is_control)],
                           pert_counts=pert_counts, control_label=control_label)
