"""Predicting cells of any target: control cells + the model's residual, over all genes.

Predictions are made set by set from real control cells (drawn with a seeded generator), so the
predicted population keeps the controls' cell-to-cell variation; the residual comes from the
jitted predict step. Output is VCC-scaled log1p, clipped to [0, 15) as cell-eval requires.
"""

from __future__ import annotations

import numpy as np

from vccjax import experiment as experiment_lib
from vccjax.data.normalize import LOG1P_MAX

_LOG1P_CEIL = np.float32(LOG1P_MAX - 1e-3)


def draw_controls(exp, rng: np.random.Generator, n_cells: int) -> np.ndarray:
  """`n_cells` control cell indices (without replacement while enough exist)."""
  controls = exp.dataset.cells_of(exp.dataset.control_label)
  return rng.choice(controls, size=n_cells, replace=n_cells > len(controls))


def predict_residuals(exp, *, predict_fn, params, enc, rows, control_cells, set_size: int,
                      sets_per_call: int = 8) -> np.ndarray:
  """Residuals [n, G] for control cells `control_cells` [n] under perturbation `enc[rows]`.

  Cells are cut into sets of `set_size` (the last one padded and masked); every set of a target
  is predicted with that target's perturbation. rows: [n] encoding row per cell's set.
  """
  ds = exp.dataset
  n = len(control_cells)
  n_sets = -(-n // set_size)
  pad = n_sets * set_size - n
  cells = np.concatenate([control_cells, np.full(pad, control_cells[0])])
  mask = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)]).reshape(n_sets, set_size)
  set_rows = np.concatenate([rows, np.full(pad, rows[-1])]).reshape(n_sets, set_size)[:, 0]
  expr = ds.hvg_log1p[cells].reshape(n_sets, set_size, -1)
  out = []
  for start in range(0, n_sets, sets_per_call):
    sl = slice(start, start + sets_per_call)
    n_here = len(set_rows[sl])
    # Pad the call to a fixed number of sets so the jitted step compiles once.
    fill = sets_per_call - n_here
    inputs = experiment_lib.model_inputs(
        np.concatenate([expr[sl], np.repeat(expr[sl][-1:], fill, 0)]),
        np.concatenate([mask[sl], np.zeros((fill, set_size), bool)]),
        enc, np.concatenate([set_rows[sl], np.repeat(set_rows[sl][-1:], fill)]))
    out.append(np.asarray(predict_fn(params, inputs))[:n_here])
  return np.concatenate(out).reshape(n_sets * set_size, -1)[:n]


def predict_target(exp, *, predict_fn, params, target: str, n_cells: int,
                   rng: np.random.Generator, enc=None, set_size: int | None = None) -> np.ndarray:
  """Predicted log1p expression [n_cells, G] of `n_cells` cells of `target` (all genes)."""
  enc = enc if enc is not None else exp.encode([target])
  set_size = set_size or exp.config.data.set_size
  controls = draw_controls(exp, rng, n_cells)
  residual = predict_residuals(exp, predict_fn=predict_fn, params=params, enc=enc,
                               rows=np.zeros(n_cells, np.int64), control_cells=controls,
                               set_size=set_size)
  base = exp.dataset.log1p_rows(controls)
  # Re-centre the drawn controls on the mean of all controls: the prediction's pseudobulk then
  # carries no sampling noise from which controls were drawn.
  base += exp.dataset.control_pseudobulk - base.mean(0)
  return floor_preserving_mean(base + residual)


def floor_preserving_mean(expr: np.ndarray, *, iterations: int = 20) -> np.ndarray:
  """Clips log1p expression at 0 without moving each gene's mean (where it is >= 0).

  Clipping a negative shift at 0 would raise the mean of lowly expressed genes; instead each
  gene's values are lowered by the c >= 0 (found by bisection) for which the mean of
  max(x - c, 0) equals the mean of x. expr: [cells, genes] -> same shape, float32, in [0, 15).
  """
  expr = np.asarray(expr, np.float32)
  target = np.maximum(expr.mean(0), 0.0)
  lo = np.zeros(expr.shape[1], np.float32)
  hi = np.maximum(expr.max(0), 0.0)
  for _ in range(iterations):
    mid = 0.5 * (lo + hi)
    too_high = np.maximum(expr - mid, 0.0).mean(0) > target
    lo, hi = np.where(too_high, mid, lo), np.where(too_high, hi, mid)
  needs = np.maximum(expr, 0.0).mean(0) > target  # genes that clipping would move
  out = np.maximum(expr - np.where(needs, hi, 0.0), 0.0)
  return np.minimum(out, _LOG1P_CEIL).astype(np.float32)
