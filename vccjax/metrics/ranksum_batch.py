"""The per-gene reduction of `ranksum.py`: sort each gene's keys, then sum them per group.

A gene's sort keys ((value bits - base) << label_bits | group; the largest key is padding, and
marks stored zeros wherever they are) lie in pieces, one per row chunk of the file, all in one
flat array. One compiled pass per gene (numba) gathers its pieces into a row, sorts the row and
reduces it while it is in cache:

- the gather: each piece's keys other than padding, copied to one work row (~0.1 MB for a gene
  of a VCC-shape file: in cache for what follows), with the row's smallest and largest key:
  1.2 ns a key, where a NumPy gather into padded rows (a slice assignment per gene and piece)
  took 1.5 and wrote a second copy of the keys;
- the sort: one most-significant-digit counting pass spreads the keys over as many buckets as
  there are keys (bucket = (key - row min) >> shift), then one insertion pass sorts the row,
  each bucket holding a handful of keys (where one holds many, a run of ties or a skewed row,
  each bucket is sorted on its own, by NumPy's sort if it is large and not already sorted).
  ~6 ns a key on one core for genes of a VCC-shape file (`benchmarks/score_speed.py`'s), the
  whole per-gene pass 10.4 (it was 16.3 with padded rows and an insertion sort per bucket, 29.2
  for NumPy's vectorised row sort followed by a separate pass);
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


def gene_sums(keys: np.ndarray, starts: np.ndarray, genes: np.ndarray, *, label_bits: int,
              n_groups: int, base: int) -> tuple:
  """Sums every gene's keys per (gene, group); the keys are left as they were.

  Args:
    keys: [n] keys of `ranksum.KeyFormat` (uint32 or uint64), padding (the largest key)
      anywhere.
    starts: [pieces, all genes + 1] int64: gene g's keys of piece p are
      keys[starts[p, g]:starts[p, g + 1]] (in any order).
    genes: [genes] the genes to sum, in the order of the output rows.
    label_bits, base: of the key format.
    n_groups: number of groups, control included.

  Returns:
    [genes, n_groups] float64 nonzero, control_at_or_below, control_equal, tie_terms,
    value_sums (see `ranksum.GroupRankSums`).
  """
  genes = np.asarray(genes, np.int64)
  sums = np.zeros((5, len(genes), 2 ** label_bits))
  width = int((starts[:, genes + 1] - starts[:, genes]).sum(0).max(initial=0))
  if width >= 2**30:
    raise ValueError(f"a gene holds {width} values: too many to rank (at most 2^30)")
  pad = keys.dtype.type(np.iinfo(keys.dtype).max)
  _sort_and_reduce_genes(keys, starts, genes, max(width, 1), pad, label_bits, base, *sums)
  return tuple(s[:, :n_groups] for s in sums)


@numba.njit(nogil=True, cache=True)
def _gather(keys, starts, gene, pad, row):  # pragma: no cover (compiled)
  """Copies gene `gene`'s keys other than `pad`, from every piece, to the start of `row`;
  returns (their number, smallest, largest) (0, pad, 0 if none)."""
  n = 0
  lo = np.uint64(pad)
  hi = np.uint64(0)
  for p in range(starts.shape[0]):
    for i in range(starts[p, gene], starts[p, gene + 1]):
      k = keys[i]
      if k != pad:
        row[n] = k
        n += 1
        lo = min(lo, np.uint64(k))
        hi = max(hi, np.uint64(k))
  return n, lo, hi


@numba.njit(inline="always")
def _insertion_sort(out, start, end):  # pragma: no cover (compiled)
  """Sorts out[start:end] in place by insertion (quick where the keys are nearly in order)."""
  for i in range(start + 1, end):
    k = out[i]
    if k < out[i - 1]:
      j = i - 1
      while j >= start and out[j] > k:
        out[j + 1] = out[j]
        j -= 1
      out[j + 1] = k


@numba.njit(nogil=True, cache=True)
def _sort_row(row, n, lo, hi, out, buckets):  # pragma: no cover (compiled)
  """Writes row[:n], keys in [lo, hi], sorted, to out[:n]. `buckets`: int32 work space of at
  least 2 * n + 2."""
  n_buckets = 1
  while n_buckets < n:
    n_buckets *= 2
  shift = np.uint64(0)
  while ((hi - lo) >> shift) >= n_buckets:
    shift += np.uint64(1)
  ends = buckets[:n_buckets + 1]
  ends[:] = 0
  largest = 0
  for i in range(n):
    b = np.int64((np.uint64(row[i]) - lo) >> shift) + 1
    size = ends[b] + 1
    ends[b] = size
    largest = max(largest, size)
  for b in range(n_buckets):
    ends[b + 1] += ends[b]
  for i in range(n):  # ends[b] moves from bucket b's start to its end
    k = row[i]
    b = np.int64((np.uint64(k) - lo) >> shift)
    out[ends[b]] = k
    ends[b] += 1
  if largest <= _INSERTION_MOST:
    # One insertion pass over the whole row: a key never moves past its bucket's start (the
    # buckets are in order), and a loop over the buckets' bounds would mispredict a branch per
    # bucket (7.0 against 11.8 ns a key, gathering included).
    _insertion_sort(out, 0, n)
    return
  start = 0
  for b in range(n_buckets):
    end = ends[b]
    if end - start <= _INSERTION_MOST:
      _insertion_sort(out, start, end)
    else:
      for i in range(start + 1, end):
        if out[i] < out[i - 1]:
          out[start:end] = np.sort(out[start:end])
          break
    start = end


@numba.njit(nogil=True, cache=True)
def _sort_and_reduce_genes(keys, starts, genes, width, pad, label_bits, base, nonzero,
                           at_or_below, equal, ties, value_sums):  # pragma: no cover (compiled)
  """The sums of `gene_sums`, added into the [genes, 2^label_bits] outputs (`width`: the most
  keys a gene has).

  Walking a sorted row value by value: a run is the equal values (one key value, then the
  labels in order); a part, one group's values in a run. With c control values in the run and
  the value the m-th (from 0) of its part: a control value is the c-th control of the run (c
  counted as it goes), a value of group p has all c before it; each has `seen + c` control
  values at or below it, p's are equal to c of them, and each raises its group's pooled
  t^3 - t by f(q + 1) - f(q) = 3q^2 + 3q, q = c + m for p (summing to f(c + n) - f(c)) and
  q = c before it for the control (summing to f(c)). The integer sums are kept in int64 per
  row (exact, as the float64 sums they are added to).
  """
  n_labels = 1 << label_bits
  mask = np.uint64(n_labels - 1)
  shift = np.uint64(label_bits)
  row = np.empty(width, keys.dtype)
  sorted_keys = np.empty(width, keys.dtype)
  buckets = np.empty(2 * width + 2, np.int32)
  word = np.zeros(1, np.uint32)
  as_float = word.view(np.float32)
  counts = np.zeros((4, n_labels), np.int64)
  for r in range(len(genes)):
    n, lo, hi = _gather(keys, starts, genes[r], pad, row)
    if n == 0:
      continue
    _sort_row(row, n, lo, hi, sorted_keys, buckets)
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
      # Without a branch (one group in six is the control: a branch mispredicts): the
      # control's part comes first in its run, so for a control value m == c.
      other = np.int64(label != 0)
      q = m + c * other
      counts[2, label] += c * other
      c += 1 - other
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
