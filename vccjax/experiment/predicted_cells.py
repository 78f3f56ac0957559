"""Predicting cells of any target: control cells changed by the model's fold changes, all genes.

Predictions are made set by set from real control cells (drawn with a seeded generator), so the
predicted population keeps the controls' cell-to-cell variation. The model gives each cell and
gene a fold change f of its expected counts; the predicted cell's UMI counts keep a share f of
the control cell's UMIs when f < 1 (a weakly expressed gene that goes down drops out, as in real
cells) and gain (f - 1) x the cell's expected count when f > 1 (a gene can switch on in a cell
that had not detected it), rounded to integers without changing any gene's total
(`round_keeping_totals`). Output is VCC-scaled log1p below 15, as cell-eval requires.
"""

from __future__ import annotations

from concurrent import futures
import os

import numpy as np

from vccjax.data import normalize
from vccjax.data import targets as targets_lib
from vccjax.data.normalize import LOG1P_MAX
from vccjax.experiment import assembly
from vccjax.models.inputs import MAX_LOG_FOLD

_LOG1P_CEIL = np.float32(LOG1P_MAX - 1e-3)


def context_share(exp, target: str | None = None) -> np.ndarray:
  """[contexts] share of a target's predicted cells in each context (batch x cell type).

  Perturbed cells need not sit in the contexts in the controls' proportions (in Datlinger 2017,
  70% of controls but ~50% of perturbed cells are stimulated): an unseen target's cells follow
  the training targets'. A target tied to a cell type ('A@T98G') lives in that cell type's
  contexts only, in its controls' proportions.
  """
  ds = exp.dataset
  cell_type = targets_lib.cell_type_of(target) if target else None
  if cell_type is not None:
    cells = ds.labels.is_control & (ds.context_cell_types == cell_type)[ds.context]
  else:
    cells = np.isin(ds.labels.target_gene, exp.split.train)
  share = np.bincount(ds.context[cells], minlength=len(ds.context_names)).astype(np.float64)
  if share.sum() == 0:
    raise ValueError(f"no cells to predict {target!r} from (no controls of its cell type?)")
  return share / share.sum()


def draw_controls(exp, rng: np.random.Generator, n_cells: int,
                  target: str | None = None) -> np.ndarray:
  """`n_cells` control cells drawn in the target's context proportions (`context_share`).

  Without replacement while enough controls of the target's contexts exist (then with
  replacement); a context without controls is left out.
  """
  ds = exp.dataset
  controls = ds.cells_of(ds.control_label)
  ctx = ds.context[controls]
  per_context = np.bincount(ctx, minlength=len(ds.context_names))
  weight = context_share(exp, target)[ctx] / per_context[ctx]
  if weight.sum() <= 0:
    weight = np.ones(len(controls))
  # Only controls of contexts the target's cells sit in can be drawn: fewer of them than cells
  # means drawing with replacement.
  return rng.choice(controls, size=n_cells, replace=n_cells > np.count_nonzero(weight),
                    p=weight / weight.sum())


def matched_control_counts(exp, target: str | None = None) -> np.ndarray:
  """[genes] mean normalised counts of controls in the target's context proportions."""
  return context_share(exp, target) @ exp.dataset.context_control_counts


def predict_log_folds(exp, *, predict_fn, params, enc, rows, control_cells, set_size: int,
                      sets_per_call: int = 8) -> np.ndarray:
  """Log fold changes [n, G] for control cells `control_cells` [n] under perturbation `enc[rows]`.

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
    inputs = assembly.model_inputs(
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
  controls = draw_controls(exp, rng, n_cells, target)
  log_fold = predict_log_folds(exp, predict_fn=predict_fn, params=params, enc=enc,
                               rows=np.zeros(n_cells, np.int64), control_cells=controls,
                               set_size=set_size)
  ds = exp.dataset
  return perturbed_log1p(ds.count_rows(controls), log_fold, totals=ds.totals[controls],
                         target_sum=ds.target_sum,
                         control_counts=matched_control_counts(exp, target), rng=rng)


def perturbed_log1p(counts: np.ndarray, log_fold: np.ndarray, *, totals: np.ndarray,
                    target_sum: float, control_counts: np.ndarray, rng: np.random.Generator,
                    genes_per_block: int = 128) -> np.ndarray:
  """VCC-scaled log1p (below 15) of `sample_perturbed_counts`: [n, G] float32.

  The same draws and the same values, computed a block of genes at a time on every core: the
  temporaries are [n, genes_per_block] and stay in cache instead of a dozen [n, G] float64
  arrays.
  """
  n, n_genes = counts.shape
  order_keys, start = rng.random((n, n_genes)), rng.random(n_genes)  # as round_keeping_totals
  out = np.empty((n, n_genes), np.float32)

  def block(j: int) -> None:
    b = slice(j, j + genes_per_block)
    mean = _perturbed_mean(counts[:, b], log_fold[:, b], totals=totals, target_sum=target_sum,
                           control_counts=control_counts[b])
    rounded = _systematic_round(mean, order_keys[:, b], start[b])
    out[:, b] = np.minimum(normalize.log1p_normalize(rounded, target_sum=target_sum,
                                                     totals=totals), _LOG1P_CEIL)

  # NumPy's sorts and ufuncs release the GIL: blocks run on every core, each writing its columns.
  with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    list(pool.map(block, range(0, n_genes, genes_per_block)))
  return out


def sample_perturbed_counts(counts: np.ndarray, log_fold: np.ndarray, *, totals: np.ndarray,
                            target_sum: float, control_counts: np.ndarray,
                            rng: np.random.Generator) -> np.ndarray:
  """UMI counts of perturbed cells drawn from control cells and predicted fold changes.

  The fold change is first corrected for which controls were drawn: it is rescaled so the drawn
  cells' mean normalised counts match `control_counts` (those of all controls in the perturbed
  cells' context proportions), which removes the draw's sampling noise from the pseudobulk.

  Args:
    counts: [n, G] raw UMI counts of the drawn control cells.
    log_fold: [n, G] predicted natural-log fold changes.
    totals: [n] the cells' total counts (their normalisation is kept).
    target_sum: the file's median total (VCC scaling).
    control_counts: [G] mean normalised counts the drawn cells should have.
    rng: the generator of the draws.
  Returns:
    [n, G] float64 integer-valued counts; E[counts] = f x expected control counts.
  """
  return round_keeping_totals(_perturbed_mean(counts, log_fold, totals=totals,
                                             target_sum=target_sum,
                                             control_counts=control_counts), rng)


def _perturbed_mean(counts, log_fold, *, totals, target_sum, control_counts) -> np.ndarray:
  """[n, G] expected counts of the perturbed cells (`sample_perturbed_counts` before rounding)."""
  scale = (totals / target_sum)[:, None]  # raw counts per normalised count, per cell
  drawn = (counts / scale).mean(0)
  # Multiplying keeps each gene's distribution shape (zeros stay zeros): the correction itself
  # must not look like a perturbation to a rank test.
  rescale = np.divide(control_counts, drawn, out=np.ones_like(drawn), where=drawn > 0)
  mean = counts * rescale
  fold = np.exp(np.clip(log_fold, -MAX_LOG_FOLD, MAX_LOG_FOLD))
  # A down-regulated gene keeps a share f of the cell's UMIs; an up-regulated one gains (f - 1)
  # x the cell's expected count, so it can switch on where it was undetected.
  expected = scale * control_counts[None, :]
  return np.where(fold < 1, mean * fold, mean + (fold - 1.0) * expected)


def round_keeping_totals(mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Integer counts with E[count] = mean, each within 1 of its mean, per-gene totals kept.

  Systematic sampling over the cells (in a random order per gene) decides which cells round
  up: each does with probability equal to its fractional part, and a gene's total over the
  cells is within 1 of the sum of its means. So the predicted population's pseudobulk is the
  model's prediction, not the prediction plus sampling noise that would show up as spurious fold
  changes of rarely detected genes. mean: [n, G] >= 0 -> [n, G] float64.
  """
  order_keys = rng.random(mean.shape)
  return _systematic_round(mean, order_keys, rng.random(mean.shape[1]))


def _systematic_round(mean, order_keys, start) -> np.ndarray:
  """`round_keeping_totals` given its draws: order_keys [n, G] (cells' order per gene) and
  start [G] (the systematic sample's offset), uniform in [0, 1)."""
  base = np.floor(mean)
  frac = mean - base
  order = np.argsort(order_keys, axis=0)
  cumulative = np.cumsum(np.take_along_axis(frac, order, axis=0), axis=0)
  steps = np.floor(cumulative + start)
  picked = np.diff(steps, axis=0, prepend=np.floor(start)[None, :])
  up = np.empty_like(picked)
  np.put_along_axis(up, order, picked, axis=0)
  return base + up
