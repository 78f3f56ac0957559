"""Put one file's expression on the VCC scale exactly as `cell-eval` does before scoring.

cell-eval (`_convert_to_normlog`, `guess_is_lognorm`) decides per file: no value with a fractional
part above 1e-3 means integer counts, which scanpy's `normalize_total` (each cell to the file's
median total) and `log1p` then scale; otherwise the values must already be log1p, so a negative
value or one >= 15 is an error. Predicted and real files are scaled separately.

Scaling needs the whole file once (the median total) before any cell can be scaled, so it is two
steps over row chunks: `plan_scaling` (one pass: the decision and the cells' totals) and
`apply_scaling` (per chunk). Counts come out bit-identical to cell-eval's float32 scaling.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np
import scipy.sparse as sp

from vccjax.data import normalize
from vccjax.errors import InputError

_ROWS_PER_CHUNK = 8192
_VALUES_PER_CHECK = 1 << 17  # values per window of `inspect_values` (L2-sized)
_FRACTION_EPSILON = 1e-3  # cell-eval's guess_is_lognorm


@dataclasses.dataclass(frozen=True)
class ScalePlan:
  """How to scale a file: counts (with the cells' totals and the median target) or log1p.

  Attributes:
    counts: the file holds integer counts.
    totals: [cells] total count per cell (counts only).
    target_sum: the file's median total, scanpy's rule (counts only).
    low_positive, high: the smallest positive and the largest value of the file as stored.
  """
  counts: bool
  totals: np.ndarray | None = None
  target_sum: float | None = None
  low_positive: float = 1.0
  high: float = 1.0

  def log1p_bounds(self) -> tuple[float, float]:
    """Bounds (within float32 rounding) on the file's positive values once scaled."""
    if not self.counts:
      return self.low_positive, max(self.high, self.low_positive)
    factor = self.totals[self.totals > 0] / self.target_sum
    if not len(factor):
      return 1.0, 1.0
    return (float(np.log1p(self.low_positive / factor.max())),
            float(np.log1p(max(self.high, self.low_positive) / factor.min())))


def plan_scaling(chunks: Iterable, *, where: str = "X", sparse: bool | None = None) -> ScalePlan:
  """One pass over a file's row chunks: counts or log1p, and for counts the median total.

  Args:
    chunks: (start_row, [rows, genes] dense or sparse chunk) pairs covering the file in order.
    where: what to name in error messages (e.g. the file path).
    sparse: whether the file stores X sparse (scanpy's median differs, see below); None: as the
      chunks are.

  Raises:
    InputError: non-finite values, negative counts, or fractional values outside [0, 15).
  """
  stored_sparse = sparse
  fractional, low, high, low_positive, totals = False, 0.0, 0.0, np.inf, []
  sparse = True if stored_sparse is None else stored_sparse
  for _, chunk in chunks:
    sparse = sp.issparse(chunk) if stored_sparse is None else stored_sparse
    finite, chunk_low, chunk_high, chunk_fractional, chunk_positive = inspect_values(
        chunk.data if sp.issparse(chunk) else np.asarray(chunk))
    if not finite:
      raise InputError(where, "expression holds NaN or infinite values",
                       "write finite raw counts or log1p values")
    fractional = fractional or chunk_fractional
    low, high = min(low, chunk_low), max(high, chunk_high)
    low_positive = min(low_positive, chunk_positive)
    totals.append(normalize.cell_totals(chunk))
  if fractional:
    if low < 0 or high >= normalize.LOG1P_MAX:
      raise InputError(where, f"values look neither like counts nor log1p (range [{low:.3g}, "
                       f"{high:.3g}], log1p must be in [0, {normalize.LOG1P_MAX:g}))",
                       "write raw integer counts or log1p(normalised counts)")
    return ScalePlan(counts=False, low_positive=_finite_or_one(low_positive), high=high)
  if low < 0:
    raise InputError(where, "integer-valued expression with negative values",
                     "write raw non-negative counts")
  totals = np.concatenate(totals) if totals else np.zeros(0)
  # scanpy takes the median over all cells for CSR input but over non-zero totals for dense.
  try:
    target_sum = normalize.median_target_sum(totals if sparse else totals[totals > 0])
  except ValueError as e:
    raise InputError(where, str(e), "the file holds no counts") from e
  return ScalePlan(counts=True, totals=totals, target_sum=target_sum,
                   low_positive=_finite_or_one(low_positive), high=high)


def _finite_or_one(value: float) -> float:
  return float(value) if np.isfinite(value) else 1.0


def apply_scaling(chunk, *, plan: ScalePlan, start: int):
  """[rows, genes] chunk starting at row `start` -> float32 log1p (CSR if the chunk was sparse)."""
  if not plan.counts:
    return chunk.astype(np.float32, copy=False)
  totals = plan.totals[start:start + chunk.shape[0]]
  return normalize.log1p_normalize(chunk, target_sum=plan.target_sum, totals=totals)


def to_vcc_log1p(expr, *, where: str = "X", in_place: bool = False):
  """The VCC log1p scale of a [cells, genes] matrix, float32, as cell-eval computes it.

  Args:
    expr: [cells, genes] raw integer counts or log1p expression, dense or scipy sparse.
    where: what to name in error messages (e.g. the file path).
    in_place: a float32 CSR of counts may be overwritten with the result (one file-sized
      matrix in memory instead of two).

  Returns:
    [cells, genes] float32 log1p expression, CSR if `expr` was sparse.
  """
  if sp.issparse(expr):
    expr = sp.csr_matrix(expr)
  plan = plan_scaling(_row_chunks(expr), where=where)
  if not plan.counts:
    return expr.astype(np.float32, copy=False)
  if not sp.issparse(expr):
    return apply_scaling(expr, plan=plan, start=0)
  out = expr if in_place and expr.dtype == np.float32 else expr.astype(np.float32, copy=True)
  for start, chunk in _row_chunks(out):
    lo = out.indptr[start]
    # Row chunks written back into the same buffer: never a second file-sized matrix.
    out.data[lo:lo + chunk.nnz] = apply_scaling(chunk, plan=plan, start=start).data
  return out


def is_counts(expr) -> bool:
  """cell-eval's test: no value has a fractional part above 1e-3. expr: [cells, genes]."""
  values = sp.csr_matrix(expr).data if sp.issparse(expr) else np.asarray(expr)
  return not inspect_values(values)[3]


def inspect_values(values: np.ndarray) -> tuple[bool, float, float, bool, float]:
  """(all finite, min, max, any fractional part > 1e-3, smallest positive value or inf) of an
  array.

  The fractional part is NumPy's `modf`'s (x - trunc(x), sign of x), as cell-eval tests it; the
  min and max count zeros, as a sparse matrix's min and max do. Float64 input is checked in
  float64, as cell-eval does. Cache-sized windows with one reused buffer: no pass over the whole
  array and no new memory per call beyond a window (this runs over every value of a file).
  """
  flat = np.ravel(values)
  if flat.dtype not in (np.float32, np.float64):
    flat = flat.astype(np.float64)
  low, high, fractional, positive = 0.0, 0.0, False, np.inf
  part = np.empty(min(len(flat), _VALUES_PER_CHECK), flat.dtype)
  for start in range(0, len(flat), _VALUES_PER_CHECK):
    window = flat[start:start + _VALUES_PER_CHECK]
    window_low, window_high = float(window.min()), float(window.max())  # NaN propagates
    if not (np.isfinite(window_low) and np.isfinite(window_high)):
      return False, low, high, fractional, positive
    low, high = min(low, window_low), max(high, window_high)
    if not fractional:  # once one is found, the file is not counts
      whole = part[:len(window)]
      np.trunc(window, out=whole)
      np.subtract(window, whole, out=whole)
      fractional = bool((whole > _FRACTION_EPSILON).any())
    if window_low > 0:
      positive = min(positive, window_low)
    elif window_high > 0:
      positive = min(positive, float(window.min(where=window > 0, initial=np.inf)))
  return True, low, high, fractional, positive


def _row_chunks(expr):
  """(start, rows) views of a dense or CSR matrix, `_ROWS_PER_CHUNK` rows at a time."""
  for start in range(0, expr.shape[0], _ROWS_PER_CHUNK):
    stop = min(start + _ROWS_PER_CHUNK, expr.shape[0])
    if sp.issparse(expr):
      lo, hi = expr.indptr[start], expr.indptr[stop]
      yield start, sp.csr_matrix((expr.data[lo:hi], expr.indices[lo:hi],
                                  expr.indptr[start:stop + 1] - lo),
                                 shape=(stop - start, expr.shape[1]))
    else:
      yield start, expr[start:stop]
