"""The VCC scaling (counts -> each cell to the file's median total -> log1p) and HVG selection.

The scaling is the one `cell-eval` applies (scanpy's `normalize_total` with its default target,
the median total count over all cells of a CSR file, then `log1p`), computed in float32 chunks so
a file of the full VCC shape never has to be densified.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from vccjax.data import count_log1p

LOG1P_MAX = 15.0  # cell-eval treats fractional data >= this as not log1p.
_VALUES_PER_SLICE = 64  # `apply_per_row`: below this many values per slice, one per-value array


def has_fractional_values(x, *, epsilon: float = 1e-3) -> bool:
  """True when any value has a fractional part > epsilon (cell-eval's test for 'not counts')."""
  values = x.data if sp.issparse(x) else np.asarray(x)
  frac, _ = np.modf(values)
  return bool(np.any(frac > epsilon))


def cell_totals(counts) -> np.ndarray:
  """Total count per cell. counts: [cells, genes] -> [cells] float64."""
  return np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()


def row_totals(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
  """`cell_totals` of a CSR chunk from its values and indptr alone. -> [rows] float64."""
  totals = np.zeros(len(indptr) - 1)
  nonempty = np.flatnonzero(np.diff(indptr))
  if len(nonempty):  # an empty row has no values, so it may sit inside its neighbour's segment
    totals[nonempty] = np.add.reduceat(values[:indptr[-1]], indptr[nonempty], dtype=np.float64)
  return totals


def apply_per_row(ufunc, values: np.ndarray, indptr: np.ndarray, row_values: np.ndarray) -> None:
  """values = ufunc(values, the value of each one's row), in place, for a CSR's stored values.

  Consecutive rows with the same value (a file's cells of one target, say) are one slice, so a
  VCC chunk needs no per-value array; where slices would be short, one `np.repeat` instead. The
  same float operation either way, so the same bits.

  Args:
    ufunc: a binary NumPy ufunc (e.g. np.divide, np.bitwise_or).
    values: at least [indptr[-1]] stored values, changed in place.
    indptr: [rows + 1] the CSR's row pointers.
    row_values: [rows] one value per row, of the dtype the operation should take.
  """
  values = values[:int(indptr[-1])]
  runs = np.flatnonzero(row_values[1:] != row_values[:-1]) + 1
  if (len(runs) + 1) * _VALUES_PER_SLICE <= len(values):
    starts = np.r_[0, runs]
    for lo, hi, value in zip(indptr[starts], indptr[np.r_[runs, len(row_values)]],
                             row_values[starts]):
      ufunc(values[lo:hi], value, out=values[lo:hi])
  else:
    ufunc(values, np.repeat(row_values, np.diff(indptr)), out=values)


def size_factors(totals: np.ndarray, *, target_sum: float) -> np.ndarray:
  """scanpy's float32 size factors, `total / target_sum`; an all-zero cell keeps 1."""
  factor = np.asarray(totals, dtype=np.float32) / np.float32(target_sum)
  factor += factor == 0
  return factor


def median_target_sum(totals: np.ndarray) -> float:
  """scanpy's default `normalize_total` target for CSR input: the float32 median of all totals.

  scanpy's sparse path (the VCC layout) takes the median over every cell, zero totals included,
  in float32; its dense path drops zero totals first, so pass `totals[totals > 0]` to reproduce
  that one.
  """
  totals = np.asarray(totals, dtype=np.float32)
  if not (totals > 0).any():
    raise ValueError("every cell has a total count of 0")
  return float(np.median(totals))


def log1p_normalize(counts, *, target_sum: float, totals: np.ndarray | None = None):
  """VCC scaling of raw counts: `log1p(count / (cell_total / target_sum))`, float32.

  The float32 operations and their order are scanpy's (`normalize_total` then `log1p`), so the
  result is bit-identical to what `cell-eval` computes for float32 counts: the size factor
  `total / target_sum` is rounded to float32 first and each count is divided by it; an all-zero
  cell keeps a factor of 1 (scanpy's guard against dividing by zero).

  Args:
    counts: [cells, genes] raw counts, CSR or dense.
    target_sum: the file's median cell total (`median_target_sum`).
    totals: [cells] the cells' totals, when already known.

  Returns:
    [cells, genes] float32 log1p expression, CSR (sharing the input's index arrays) if the
    input was sparse.
  """
  if totals is None:
    totals = cell_totals(counts)
  factor = size_factors(totals, target_sum=target_sum)
  if sp.issparse(counts):
    counts = sp.csr_matrix(counts)
    # A new data array; the index arrays are shared with `counts` (copying them costs as much).
    data = counts.data.astype(np.float32, copy=True)
    count_log1p.scale_rows(data, counts.indptr, factor=factor,
                           table=count_log1p.log1p_table(factor))
    return sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)
  return np.log1p(np.asarray(counts, dtype=np.float32) / factor[:, None])


class GeneMoments:
  """Per-gene mean and variance of log1p expression (for HVG selection) from the sums a pass
  over the cells adds up (`dataset._group_pass`)."""

  def __init__(self, n_genes: int):
    self.n = 0
    self.sum = np.zeros(n_genes, np.float64)
    self.sum_sq = np.zeros(n_genes, np.float64)

  @property
  def mean(self) -> np.ndarray:
    return self.sum / max(self.n, 1)

  @property
  def var(self) -> np.ndarray:
    return np.maximum(self.sum_sq / max(self.n, 1) - self.mean**2, 0.0)


def select_hvg(mean: np.ndarray, var: np.ndarray, n_top: int, *,
               always_include: np.ndarray | None = None) -> np.ndarray:
  """Indices (sorted) of the `n_top` most variable genes, normalised for their mean.

  Genes are ranked by variance of log1p expression standardised within 20 mean bins (the
  Seurat-style dispersion ranking on log1p data), so highly expressed genes do not crowd out
  the rest. `always_include` (gene indices) are kept, e.g. the perturbed targets.

  Args:
    mean, var: [genes] per-gene mean and variance of log1p expression.
    n_top: number of genes to return (all genes if n_top >= genes).
  """
  n_genes = len(mean)
  if n_top >= n_genes:
    return np.arange(n_genes)
  dispersion = np.log(np.maximum(var, 1e-12) / np.maximum(mean, 1e-12))
  expressed = mean > 0
  edges = np.quantile(mean[expressed], np.linspace(0, 1, 21)) if expressed.any() else [0, 1]
  bins = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, len(edges) - 2)
  score = np.full(n_genes, -np.inf)
  for b in np.unique(bins[expressed]):
    in_bin = expressed & (bins == b)
    d = dispersion[in_bin]
    sd = d.std()
    score[in_bin] = (d - d.mean()) / (sd if sd > 0 else 1.0)
  chosen = set()
  if always_include is not None:
    chosen.update(int(i) for i in always_include)
  for i in np.argsort(-score, kind="stable"):
    if len(chosen) >= n_top:
      break
    chosen.add(int(i))
  return np.array(sorted(chosen), dtype=np.int64)
