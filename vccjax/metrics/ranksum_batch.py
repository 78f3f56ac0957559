"""The per-gene reduction of `ranksum.py`: sort each gene's keys, then sum them per group.

Each row holds one gene's sort keys ((value bits - base) << label_bits | group; the largest key
is padding, and marks stored zeros wherever they are). One compiled pass per row (numba) sorts
the row's keys and reduces them while they are in cache:

- the sort: one most-significant-digit counting pass spreads the keys over as many buckets as
  there are keys (bucket = (key - row min) >> shift), then each bucket, a handful of keys, is
  sorted by insertion (a large one, a run of ties, is checked and only sorted if it is not
  already). 13.6 against 29.2 ns a key for NumPy's vectorised row sort followed by a separate
  pass, on one core, for 200 genes of a VCC-shape file (`benchmarks/score_speed.py`'s);
- the reduction: the runs of equal values, where the control's values come first, so a
  value's count of control values at or below it is the controls seen before the run plus the
  run's own, and each group's part of a run gives its tie term. Each value is added to its
  group's sum in sorted order, as a `np.bincount` over the sorted row would.

numba compiles it once per key dtype (cached beside the module: seconds on the first run of a
fresh install).
"""

from __future__ import annotations

import numba
import numpy as np

_INSERTION_MOST = 48  # a bucket of more keys is sorted by numba's np.sort (unless sorted)


def batch_sums(rows: np.ndarray, *, label_bits: int, n_groups: int, base: int) -> tuple:
  """Sums every row's keys per (gene, group); the rows are left as they were.

  Args:
    rows: [genes, width] keys of `ranksum.KeyFormat` (uint32 or uint64), in any order, padding
      (the largest key) anywhere.
    label_bits, base: of the key format.
    n_groups: number of groups, control included.

  Returns:
    [genes, n_groups] float64 nonzero, control_at_or_below, control_equal, tie_terms,
    value_sums (see `ranksum.GroupRankSums`).
  """
  sums = np.zeros((5, rows.shape[0], 2 ** label_bits))
  pad = rows.dtype.type(np.iinfo(rows.dtype).max)
  _sort_and_reduce_rows(rows, pad, label_bits, base, *sums)
  return tuple(s[:, :n_groups] for s in sums)


@numba.njit(nogil=True, cache=True)
def _sort_row(row, pad, out, buckets):  # pragma: no cover (compiled)
  """Writes the keys of `row` other than `pad`, sorted, to the start of `out`; returns their
  number. `buckets`: int64 work space of at least 2 * len(row) + 2."""
  n = 0
  lo = np.uint64(pad)
  hi = np.uint64(0)
  for k in row:
    if k != pad:
      n += 1
      lo = min(lo, np.uint64(k))
      hi = max(hi, np.uint64(k))
  if n == 0:
    return 0
  n_buckets = 1
  while n_buckets < n:
    n_buckets *= 2
  shift = np.uint64(0)
  while ((hi - lo) >> shift) >= n_buckets:
    shift += np.uint64(1)
  ends = buckets[:n_buckets + 1]
  ends[:] = 0
  for k in row:
    if k != pad:
      ends[np.int64((np.uint64(k) - lo) >> shift) + 1] += 1
  for b in range(n_buckets):
    ends[b + 1] += ends[b]
  for k in row:  # ends[b] moves from bucket b's start to its end
    if k != pad:
      b = np.int64((np.uint64(k) - lo) >> shift)
      out[ends[b]] = k
      ends[b] += 1
  start = 0
  for b in range(n_buckets):
    end = ends[b]
    if end - start <= _INSERTION_MOST:
      for i in range(start + 1, end):
        k = out[i]
        j = i - 1
        while j >= start and out[j] > k:
          out[j + 1] = out[j]
          j -= 1
        out[j + 1] = k
    else:
      for i in range(start + 1, end):
        if out[i] < out[i - 1]:
          out[start:end] = np.sort(out[start:end])
          break
    start = end
  return n


@numba.njit(nogil=True, cache=True)
def _sort_and_reduce_rows(rows, pad, label_bits, base, nonzero, at_or_below, equal, ties,
                          value_sums):  # pragma: no cover (compiled)
  """The sums of `batch_sums`, added into the [genes, 2^label_bits] outputs.

  Walking a sorted row value by value: a run is the equal values (one key value, then the
  labels in order); a part, one group's values in a run. With c control values in the run and
  the value the m-th (from 0) of its part: a control value is the c-th control of the run (c
  counted as it goes), a value of group p has all c before it; each has `seen + c` control
  values at or below it, p's are equal to c of them, and each raises its group's pooled
  t^3 - t by f(q + 1) - f(q) = 3q^2 + 3q, q = c + m for p (summing to f(c + n) - f(c)) and
  q = c before it for the control (summing to f(c)). The integer sums are kept in int64 per
  row (exact, as the float64 sums they are added to).
  """
  n_rows, width = rows.shape
  n_labels = 1 << label_bits
  mask = np.uint64(n_labels - 1)
  shift = np.uint64(label_bits)
  sorted_keys = np.empty(width, rows.dtype)
  buckets = np.empty(2 * width + 2, np.int64)
  word = np.zeros(1, np.uint32)
  as_float = word.view(np.float32)
  counts = np.zeros((4, n_labels), np.int64)
  for r in range(n_rows):
    n = _sort_row(rows[r], pad, sorted_keys, buckets)
    if n == 0:
      continue
    sums = value_sums[r]
    counts[:] = 0
    seen = 0  # control values below the current run
    c = 0  # control values of the current run so far
    m = 0  # values of the current part so far
    prev = np.uint64(sorted_keys[0])
    run_bits = prev >> shift
    word[0] = np.uint32(run_bits + np.uint64(base))
    value = np.float64(as_float[0])
    for i in range(n):
      key = np.uint64(sorted_keys[i])
      if key != prev:
        bits = key >> shift
        if bits != run_bits:
          seen += c
          c = 0
          run_bits = bits
          word[0] = np.uint32(bits + np.uint64(base))
          value = np.float64(as_float[0])
        m = 0
        prev = key
      label = np.int64(key & mask)
      if label == 0:
        q = c
        c += 1
      else:
        q = c + m
        counts[2, label] += c
      m += 1
      counts[0, label] += 1
      counts[1, label] += seen + c
      counts[3, label] += 3 * q * q + 3 * q
      sums[label] += value
    for g in range(n_labels):
      nonzero[r, g] += counts[0, g]
      at_or_below[r, g] += counts[1, g]
      equal[r, g] += counts[2, g]
      ties[r, g] += counts[3, g]
