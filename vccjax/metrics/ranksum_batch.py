"""The per-gene reduction of `ranksum.py`: sort a batch of genes' keys, then sum per group.

Each row holds one gene's sort keys ((value bits - base) << label_bits | group, padding = the
largest key). After a row-wise sort (NumPy's vectorised sort), one compiled pass per row (numba)
walks the runs of equal values: within a run the control's values come first, so a value's count
of control values at or below it is the controls seen before the run plus the run's own, and
each group's part of a run gives its tie term. The pass adds each value to its group's sum in
sorted order, as a `np.bincount` over the sorted row would. numba compiles it once per key dtype
(cached beside the module: ~2 s on the first run of a fresh install).
"""

from __future__ import annotations

import numba
import numpy as np


def batch_sums(rows: np.ndarray, *, label_bits: int, n_groups: int, base: int) -> tuple:
  """Sorts padded rows of keys (in place) and sums them per (gene, group).

  Args:
    rows: [genes, width] keys of `ranksum.KeyFormat`, each gene's keys first, then padding.
    label_bits, base: of the key format.
    n_groups: number of groups, control included.

  Returns:
    [genes, n_groups] float64 nonzero, control_at_or_below, control_equal, tie_terms,
    value_sums (see `ranksum.GroupRankSums`).
  """
  rows.sort(axis=1)
  sums = np.zeros((5, rows.shape[0], 2 ** label_bits))
  _reduce_sorted_rows(rows, label_bits, base, *sums)
  return tuple(s[:, :n_groups] for s in sums)


@numba.njit(nogil=True, cache=True)
def _reduce_sorted_rows(rows, label_bits, base, nonzero, at_or_below, equal, ties,
                        value_sums):  # pragma: no cover (compiled)
  """The sums of `batch_sums` over sorted rows, added into the [genes, 2^label_bits] outputs.

  A run: equal values (one key value, then the labels in order); a part: one group's values in
  a run. With c control values in the run and n values of group p: p's values each have `seen +
  c` control values at or below them and c equal to them, and raise the run's t^3 - t, pooled
  with the control, by f(c + n) - f(c); the control's own term is f(c).
  """
  mask = (1 << label_bits) - 1
  n_rows, width = rows.shape
  word = np.zeros(1, np.uint32)
  as_float = word.view(np.float32)
  for r in range(n_rows):
    row = rows[r]
    seen = 0  # control values below the current run
    i = 0
    while i < width and (row[i] & mask) != mask:  # padding sorts last
      bits = row[i] >> label_bits
      word[0] = np.uint32(bits + base)
      value = np.float64(as_float[0])
      c = 0
      k = i
      while k < width and (row[k] & mask) != mask and (row[k] >> label_bits) == bits:
        label = row[k] & mask
        m = k + 1
        while m < width and row[m] == row[k]:
          m += 1
        n = m - k
        for _ in range(n):  # one addition per value, in sorted order
          value_sums[r, label] += value
        nonzero[r, label] += n
        if label == 0:
          c = n
          ties[r, 0] += float(n * n * n - n)
          at_or_below[r, 0] += float(n * seen + n * (n + 1) // 2)
        else:
          at_or_below[r, label] += float(n * (seen + c))
          equal[r, label] += float(n * c)
          t = c + n
          ties[r, label] += float((t * t * t - t) - (c * c * c - c))
        k = m
      seen += c
      i = k
