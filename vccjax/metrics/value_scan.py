"""The first pass's arithmetic over every value of a file, compiled (numba): one read of each
value instead of a NumPy pass per fact (min, max, fractional part, smallest positive, totals).

`scan_values` gives `scale.inspect_values`'s facts, the fractional part `x - trunc(x)` compared
with 1e-3 rounded to the values' dtype (as NumPy compares a float32 array with a Python float);
~2 ns a value against ~10 for NumPy's passes. `row_totals` sums each row in float64 in any order:
exact, so equal to NumPy's pairwise sums, for integer values only, which the caller checks first
(the facts say whether every value is an integer).
"""

from __future__ import annotations

import numba
import numpy as np


def scan_values(values: np.ndarray, *, fraction_epsilon: float) -> tuple:
  """(all finite, min, max, any fractional part > epsilon, smallest positive value or inf,
  every value an integer) of a float32 or float64 array; min and max count a zero (as a sparse
  matrix's do)."""
  flat = np.ravel(values)
  # float64 holds the dtype's values, their fractional parts and its epsilon exactly: the same
  # comparison as in the dtype.
  nans, low, high, top, largest, positive = _scan(flat)
  finite = nans == 0 and np.isfinite(low) and np.isfinite(high)
  epsilon = float(flat.dtype.type(fraction_epsilon))
  return (bool(finite), float(low), float(high), bool(top > epsilon), float(positive),
          bool(largest == 0))


def row_totals(values: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """([rows] float64 totals, [rows] int64 nonzero values) of a CSR's integer values.

  Args:
    values: at least [indptr[-1]] integer-valued float32 or float64 values.
    indptr: [rows + 1] row pointers.
  """
  totals = np.zeros(len(indptr) - 1)
  nonzero = np.zeros(len(indptr) - 1, np.int64)
  _row_totals(values, np.asarray(indptr, np.int64), totals, nonzero)
  return totals, nonzero


_BLOCK = 2048  # values converted to float64 at a time (kept in L1)


@numba.njit(nogil=True, cache=True)
def _scan(values):  # pragma: no cover (compiled)
  """(NaN count, min, max, largest fractional part, largest |fractional part|, smallest
  positive), in float64, branch-free (a NaN or infinity leaves the others meaningless)."""
  nans = 0
  low = high = top = largest = 0.0
  positive = np.inf
  block = np.empty(_BLOCK, np.float64)
  for start in range(0, len(values), _BLOCK):
    n = min(_BLOCK, len(values) - start)
    for j in range(n):  # converted first: the loop below then vectorises for float32 too
      block[j] = values[start + j]
    for j in range(n):
      v = block[j]
      nans += v != v
      low = min(low, v)
      high = max(high, v)
      part = v - np.trunc(v)  # NumPy's modf part: exact, with the sign of v
      top = max(top, part)
      largest = max(largest, abs(part))
      positive = min(positive, v if v > 0.0 else positive)
  return nans, low, high, top, largest, positive


@numba.njit(nogil=True, cache=True)
def _row_totals(values, indptr, totals, nonzero):  # pragma: no cover (compiled)
  for r in range(len(indptr) - 1):
    lo, hi = indptr[r], indptr[r + 1]
    # Four running sums (independent additions): exact for integers, whatever the order.
    s0 = s1 = s2 = s3 = 0.0
    k = 0
    i = lo
    while i + 4 <= hi:
      a, b, c, d = values[i], values[i + 1], values[i + 2], values[i + 3]
      s0 += a
      s1 += b
      s2 += c
      s3 += d
      k += (a != 0) + (b != 0) + (c != 0) + (d != 0)
      i += 4
    while i < hi:
      s0 += values[i]
      k += values[i] != 0
      i += 1
    totals[r] = (s0 + s1) + (s2 + s3)
    nonzero[r] = k
