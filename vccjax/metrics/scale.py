"""Put one file's expression on the VCC scale exactly as `cell-eval` does before scoring.

cell-eval (`_convert_to_normlog`, `guess_is_lognorm`) decides per file: no value with a fractional
part above 1e-3 means integer counts, which scanpy's `normalize_total` (each cell to the file's
median total) and `log1p` then scale; otherwise the values must already be log1p, so a negative
value or one >= 15 is an error. Predicted and real files are scaled separately.

Scaling needs the whole file once (the median total) before any cell can be scaled, so it is two
steps over row chunks: `plan_scaling` (one pass: the decision and the cells' totals) and
`apply_scaling` (per chunk). For a file that stores `X` as CSR or dense, `plan_scaling_of_rows`
and `read_scaled` do the same straight from disk into reused buffers. Counts come out bit-identical
to cell-eval's float32 scaling.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from typing import Iterable

import numpy as np
import scipy.sparse as sp

from vccjax.data import count_log1p, csr_rows, dense_rows, normalize
from vccjax.errors import InputError
from vccjax.metrics import scratch as scratch_lib
from vccjax.metrics import ranksum, value_scan

_ROWS_PER_CHUNK = 8192
_VALUES_PER_READ = 1 << 22  # stored values per read of `plan_scaling_of_csr`
_FRACTION_EPSILON = 1e-3  # cell-eval's guess_is_lognorm


@dataclasses.dataclass(frozen=True)
class ScalePlan:
  """How to scale a file: counts (with the cells' totals and the median target) or log1p.

  Attributes:
    counts: the file holds integer counts.
    totals: [cells] total count per cell (counts only).
    target_sum: the file's median total, scanpy's rule (counts only).
    low_positive, high: the smallest positive and the largest value of the file as stored.
    kept_indptr: [cells + 1] row pointers of the values `read_scaled` keeps (a sparse file's
      stored values, a dense file's nonzero ones); None where the plan was made of chunks.
  """
  counts: bool
  totals: np.ndarray | None = None
  target_sum: float | None = None
  low_positive: float = 1.0
  high: float = 1.0
  kept_indptr: np.ndarray | None = None

  @functools.cached_property
  def size_factors(self) -> np.ndarray:
    """[cells] float32 size factors of the cells (counts only)."""
    return normalize.size_factors(self.totals, target_sum=self.target_sum)

  @functools.cached_property
  def log1p_table(self) -> np.ndarray:
    """[cells, count_log1p.TABLE_SIZE] float32 log1p of each cell's small counts, scaled
    (counts only; computed once per file: ~15 MB at the VCC shape)."""
    return count_log1p.log1p_table(self.size_factors)

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
  facts, chunk_sparse = [], True
  for _, chunk in chunks:
    chunk_sparse = sp.issparse(chunk)
    facts.append((inspect_values(chunk.data if chunk_sparse else np.asarray(chunk)),
                  normalize.cell_totals(chunk)))
    check_finite(facts[-1][0], where)
  return plan_of_facts([f for f, _ in facts], _concatenate([t for _, t in facts]), where=where,
                       sparse=chunk_sparse if sparse is None else sparse)


def plan_scaling_of_rows(rows: "csr_rows.CsrRows | dense_rows.DenseRows", *, where: str = "X",
                         threads: int | None = None,
                         buffers: scratch_lib.ScratchPool | None = None) -> ScalePlan:
  """`plan_scaling` of a file read directly from disk (`csr_rows` or `dense_rows`): the values
  only (the decision and the totals need no column indices), row ranges on a thread pool, into
  buffers of `buffers` (reused by the thread that holds one). Float64 values are checked in
  float64, as cell-eval checks them; the plan also counts the values `read_scaled` will keep."""
  buffers = buffers or scratch_lib.ScratchPool()
  dense = isinstance(rows, dense_rows.DenseRows)
  dtype = np.float64 if rows.value_dtype == np.float64 else np.float32

  def facts(row_range):
    start, stop = row_range
    with buffers.lease() as scratch:
      values = scratch.array("data", int(rows.indptr[stop] - rows.indptr[start]), dtype)
      indptr = rows.read(start, stop, data=values)
      found = value_scan.scan_values(values, fraction_epsilon=_FRACTION_EPSILON)
      if found[0] and found[5]:  # integers: the compiled sums are exact
        totals, nonzero = value_scan.row_totals(values, indptr)
      else:
        totals = normalize.row_totals(values, indptr)
        nonzero = np.count_nonzero(values.reshape(stop - start, -1), axis=1) if dense else None
      return found[:5], totals, nonzero if dense else np.diff(indptr)

  threads = threads or len(os.sched_getaffinity(0))
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    found = list(pool.map(facts, rows.row_ranges(_VALUES_PER_READ)))
  for values_facts, _, _ in found:
    check_finite(values_facts, where)
  kept = np.concatenate([[0]] + [k for _, _, k in found]).cumsum()
  plan = plan_of_facts([f for f, _, _ in found], _concatenate([t for _, t, _ in found]),
                       where=where, sparse=not dense)
  return dataclasses.replace(plan, kept_indptr=kept.astype(np.int64))


def check_finite(values_facts, where):
  if not values_facts[0]:
    raise InputError(where, "expression holds NaN or infinite values",
                     "write finite raw counts or log1p values")


def plan_of_facts(value_facts: list, totals: np.ndarray, *, where: str,
                  sparse: bool) -> ScalePlan:
  """The ScalePlan of a file from its values' `inspect_values` (any number, any order) and its
  [cells] total counts, in row order."""
  fractional = any(f[3] for f in value_facts)
  low = min([0.0] + [f[1] for f in value_facts])
  high = max([0.0] + [f[2] for f in value_facts])
  low_positive = _finite_or_one(min([np.inf] + [f[4] for f in value_facts]))
  if fractional:
    if low < 0 or high >= normalize.LOG1P_MAX:
      raise InputError(where, f"values look neither like counts nor log1p (range [{low:.3g}, "
                       f"{high:.3g}], log1p must be in [0, {normalize.LOG1P_MAX:g}))",
                       "write raw integer counts or log1p(normalised counts)")
    return ScalePlan(counts=False, low_positive=low_positive, high=high)
  if low < 0:
    raise InputError(where, "integer-valued expression with negative values",
                     "write raw non-negative counts")
  # scanpy takes the median over all cells for CSR input but over non-zero totals for dense.
  try:
    target_sum = normalize.median_target_sum(totals if sparse else totals[totals > 0])
  except ValueError as e:
    raise InputError(where, str(e), "the file holds no counts") from e
  return ScalePlan(counts=True, totals=totals, target_sum=target_sum,
                   low_positive=low_positive, high=high)


def _concatenate(arrays: list) -> np.ndarray:
  return np.concatenate(arrays) if arrays else np.zeros(0)


def _finite_or_one(value: float) -> float:
  return float(value) if np.isfinite(value) else 1.0


def read_scaled(rows: "csr_rows.CsrRows | dense_rows.DenseRows", start: int, stop: int,
                scratch: scratch_lib.Scratch, *, plan: ScalePlan) -> sp.csr_matrix:
  """Rows [start, stop) of a file read directly, scaled by `plan` in `scratch`'s buffers.

  A dense file's rows come as the CSR of their nonzero values. The same float32 operations as
  `apply_scaling` (`count_log1p.scale_rows`), so the same bits; the matrix shares the buffers,
  so it is valid until `scratch` reads the next chunk.

  Returns:
    [stop - start, genes] float32 CSR log1p.
  """
  chunk = read_stored(rows, start, stop, scratch, plan=plan)
  if plan.counts:
    factor, table = row_scaling(plan, start, stop)
    count_log1p.scale_rows(chunk.data, chunk.indptr, factor=factor, table=table,
                           misses=scratch.array("misses", chunk.nnz, np.int64))
  return chunk


def row_scaling(plan: ScalePlan, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
  """(size factors [rows], log1p tables [rows, count_log1p.TABLE_SIZE]) of rows [start, stop)
  of a file of counts: how `read_scaled` scales them (`ranksum.ChunkReader.scaling`)."""
  return plan.size_factors[start:stop], plan.log1p_table[start:stop]


def read_stored(rows: "csr_rows.CsrRows | dense_rows.DenseRows", start: int, stop: int,
                scratch: scratch_lib.Scratch, *, plan: ScalePlan) -> sp.csr_matrix:
  """Rows [start, stop) of a file read directly, as stored (float32; a dense file's as the CSR
  of their nonzero values), in `scratch`'s buffers: `read_scaled` before the scaling.

  Returns:
    [stop - start, genes] float32 CSR.
  """
  n = int(plan.kept_indptr[stop] - plan.kept_indptr[start])
  index_dtype = np.int32 if rows.shape[1] < 2**31 else np.int64
  data = scratch.array("data", n, np.float32)
  indices = scratch.array("indices", n, index_dtype)
  block = None
  if isinstance(rows, dense_rows.DenseRows):
    block = scratch.array("block", (stop - start) * rows.shape[1], np.float32)
  indptr = rows.read(start, stop, data=data, indices=indices, block=block)
  return sp.csr_matrix((data[:indptr[-1]], indices[:indptr[-1]], indptr),
                       shape=(stop - start, rows.shape[1]), copy=False)


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
  float64, as cell-eval does. One compiled pass (`value_scan`), no new memory (this runs over
  every value of a file).
  """
  flat = np.ravel(values)
  if flat.dtype not in (np.float32, np.float64):
    flat = flat.astype(np.float64)
  return value_scan.scan_values(flat, fraction_epsilon=_FRACTION_EPSILON)[:5]


def _row_chunks(expr):
  """(start, rows) views of a dense or CSR matrix, `_ROWS_PER_CHUNK` rows at a time."""
  if sp.issparse(expr):
    yield from ranksum.row_views(expr, _ROWS_PER_CHUNK)
    return
  for start in range(0, expr.shape[0], _ROWS_PER_CHUNK):
    yield start, expr[start:start + _ROWS_PER_CHUNK]
