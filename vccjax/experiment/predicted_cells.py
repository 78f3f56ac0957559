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
import dataclasses
import os

import numpy as np
import scipy.sparse as sp

from vccjax.data import count_log1p
from vccjax.data import normalize
from vccjax.data import targets as targets_lib
from vccjax.data.normalize import LOG1P_MAX
from vccjax.experiment import assembly
from vccjax.experiment import perturbed_counts
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


@dataclasses.dataclass(frozen=True)
class CellDraws:
  """The random draws of a target's predicted cells, in the generator's order."""
  target: str
  controls: np.ndarray  # [n] the control cells they start from
  order_keys: np.ndarray  # [n, G] the rounding's order of the cells per gene
  start: np.ndarray  # [G] the rounding's offsets


def draw_cells(exp, rng: np.random.Generator, target: str, n_cells: int) -> CellDraws:
  """Every draw of `n_cells` predicted cells of `target` (controls, then the rounding's, as
  `round_keeping_totals` draws them), so the model can run while other targets are written."""
  n_genes = exp.dataset.n_genes
  controls = draw_controls(exp, rng, n_cells, target)
  return CellDraws(target=target, controls=controls, order_keys=rng.random((n_cells, n_genes)),
                   start=rng.random(n_genes))


def cells_of(exp, draws: CellDraws, log_fold: np.ndarray) -> sp.csr_matrix:
  """Predicted log1p expression [n, G] (CSR) of drawn cells under the model's fold changes."""
  ds = exp.dataset
  return perturbed_log1p(ds.count_rows(draws.controls), log_fold,
                         totals=ds.totals[draws.controls], target_sum=ds.target_sum,
                         control_counts=matched_control_counts(exp, draws.target),
                         order_keys=draws.order_keys, start=draws.start)


def predict_target(exp, *, predict_fn, params, target: str, n_cells: int,
                   rng: np.random.Generator, enc=None,
                   set_size: int | None = None) -> sp.csr_matrix:
  """Predicted log1p expression [n_cells, G] (CSR) of `n_cells` cells of `target` (all genes)."""
  enc = enc if enc is not None else exp.encode([target])
  draws = draw_cells(exp, rng, target, n_cells)
  log_fold = predict_log_folds(exp, predict_fn=predict_fn, params=params, enc=enc,
                               rows=np.zeros(n_cells, np.int64), control_cells=draws.controls,
                               set_size=set_size or exp.config.data.set_size)
  return cells_of(exp, draws, log_fold)


def perturbed_log1p(counts: np.ndarray, log_fold: np.ndarray, *, totals: np.ndarray,
                    target_sum: float, control_counts: np.ndarray, order_keys: np.ndarray,
                    start: np.ndarray, genes_per_block: int = 128) -> sp.csr_matrix:
  """VCC-scaled log1p (below 15) of `sample_perturbed_counts`: [n, G] float32 CSR.

  The same values from the same draws (`order_keys`, `start`: `round_keeping_totals`'), computed
  by compiled kernels (`perturbed_counts`) a block of genes at a time on every core, then made
  CSR (what the submission file stores) a block of cells at a time.
  """
  n, n_genes = counts.shape
  scale = totals / target_sum
  rounded = np.empty((n, n_genes))

  def gene_block(j: int) -> None:
    b = slice(j, j + genes_per_block)
    fold = np.exp(np.clip(log_fold[:, b], -MAX_LOG_FOLD, MAX_LOG_FOLD))  # as `_perturbed_mean`
    perturbed_counts.round_genes(counts[:, b], fold, scale,
                                 np.asarray(control_counts[b], np.float64), order_keys[:, b],
                                 start[b], rounded[:, b])

  cell_blocks = [(lo, min(lo + 256, n)) for lo in range(0, n, 256)]
  nnz = np.zeros(n + 1, np.int64)
  # The kernels release the GIL: blocks run on every core, each writing its own part.
  with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    list(pool.map(gene_block, range(0, n_genes, genes_per_block)))
    list(pool.map(lambda r: perturbed_counts.count_nonzero_rows(rounded, *r, nnz[1:]),
                  cell_blocks))
    indptr = np.cumsum(nnz)
    data = np.empty(indptr[-1], np.float32)
    indices = np.empty(indptr[-1], np.int32 if n_genes < 2**31 else np.int64)
    factor = normalize.size_factors(totals, target_sum=target_sum)
    table = count_log1p.log1p_table(factor)  # as `normalize.log1p_normalize`, same bits
    raw = np.empty(indptr[-1], bool)
    list(pool.map(lambda r: perturbed_counts.log1p_csr_rows(rounded, table, factor, indptr, *r,
                                                            data, indices, raw), cell_blocks))
    data[raw] = np.log1p(data[raw])
    np.minimum(data, _LOG1P_CEIL, out=data)
  return sp.csr_matrix((data, indices, indptr), shape=(n, n_genes))


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
