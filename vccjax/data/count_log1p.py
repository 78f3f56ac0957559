"""`log1p(count / size factor)` of a file's stored counts, with NumPy's log1p called per cell
and small count, not per value.

scanpy (so cell-eval) scales counts as `np.log1p(count / factor)` in float32, one libm `log1pf`
per stored value: for a VCC-shape file (4.7e8 values) that was a quarter of the scorer's CPU time.
But a cell's counts are mostly small integers, repeated across its genes: `log1p(c / factor)`
for c < `TABLE_SIZE` is computed once per cell, by the same NumPy ufuncs on the same float32
operands (so the same bits), into a [cells, TABLE_SIZE] table, and each value looks its entry
up (one compiled pass, numba). A value that is not such an integer (a larger count, a zero, a
count with a fractional part cell-eval tolerates) is divided in that pass and goes through
`np.log1p` after it: every value gets exactly what `np.log1p(np.divide(count, factor))` gives.
"""

from __future__ import annotations

import numba
import numpy as np

TABLE_SIZE = 256  # a VCC file's counts: 99% of nonzero values are below 64, nearly all below 256


def log1p_table(factor: np.ndarray) -> np.ndarray:
  """[cells, TABLE_SIZE] float32 `log1p(c / factor)` of the counts c = 0..TABLE_SIZE-1.

  Args:
    factor: [cells] float32 size factors (`normalize.size_factors`).
  """
  counts = np.arange(TABLE_SIZE, dtype=np.float32)
  factor = np.asarray(factor, dtype=np.float32)
  return np.log1p(np.divide(counts[None, :], factor[:, None]))


def scale_rows(values: np.ndarray, indptr: np.ndarray, *, factor: np.ndarray,
               table: np.ndarray, misses: np.ndarray | None = None) -> None:
  """values = log1p(values / factor of each one's row), float32, in place (a CSR's values).

  Args:
    values: at least [indptr[-1]] float32 counts, changed in place.
    indptr: [rows + 1] row pointers of the values.
    factor: [rows] float32 size factor of each row.
    table: [rows, TABLE_SIZE] `log1p_table(factor)`.
    misses: int64 buffer of at least [indptr[-1]] positions (work memory), or None.
  """
  n = int(indptr[-1])
  misses = np.empty(n, np.int64) if misses is None else misses
  found = _scale_rows(values, np.asarray(indptr, np.int64), factor, table, misses)
  _log1p_at(values, misses[:found])


def scale_cells(values: np.ndarray, cells: np.ndarray, *, factor: np.ndarray,
                table: np.ndarray, misses: np.ndarray | None = None) -> None:
  """values = log1p(values / factor[cells]), float32, in place (a CSC's values).

  Args:
    values: [n] float32 counts, changed in place.
    cells: [n] the cell (row) of each value.
    factor: [cells] float32 size factor of every cell of the file.
    table: [cells, TABLE_SIZE] `log1p_table(factor)`.
    misses: int64 buffer of at least [n] positions (work memory), or None.
  """
  misses = np.empty(len(values), np.int64) if misses is None else misses
  found = _scale_cells(values, cells, factor, table, misses)
  _log1p_at(values, misses[:found])


def _log1p_at(values, positions):
  """values[positions] = np.log1p(values[positions]): the values no table entry held."""
  if len(positions):
    missed = values[positions]
    np.log1p(missed, out=missed)
    values[positions] = missed


@numba.njit(inline="always")
def table_count(v, size):  # pragma: no cover (compiled)
  """The table entry of a stored value v (a count 0 < c < size equal to v), or -1: v is then
  divided by its factor and put through NumPy's log1p (`scale_rows`, `keys_by_gene`)."""
  if v > 0 and v < size:
    c = int(v)
    if np.float32(c) == v:
      return c
  return -1


@numba.njit(inline="always")
def divided(v, f):  # pragma: no cover (compiled)
  """v / f of a value no table entry holds, before NumPy's log1p."""
  return np.float32(v / f)  # float32 operands: the quotient IEEE rounds, as np.divide's


@numba.njit(nogil=True, cache=True, inline="always")
def _scale_one(values, i, f, table_row, misses, found):  # pragma: no cover (compiled)
  """values[i] from the table, or divided and its position noted; returns the misses noted."""
  c = table_count(values[i], table_row.shape[0])
  if c >= 0:
    values[i] = table_row[c]
    return found
  values[i] = divided(values[i], f)
  misses[found] = i
  return found + 1


@numba.njit(nogil=True, cache=True)
def _scale_rows(values, indptr, factor, table, misses):  # pragma: no cover (compiled)
  found = 0
  for r in range(len(indptr) - 1):
    f = factor[r]
    table_row = table[r]
    for i in range(indptr[r], indptr[r + 1]):
      found = _scale_one(values, i, f, table_row, misses, found)
  return found


@numba.njit(nogil=True, cache=True)
def _scale_cells(values, cells, factor, table, misses):  # pragma: no cover (compiled)
  found = 0
  for i in range(len(values)):
    r = cells[i]
    found = _scale_one(values, i, factor[r], table[r], misses, found)
  return found
