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
  with the control, by f(c + n) - f(c); the control's own term is f(c) (a control part, first
  in its run, has c = 0 before it: one formula for every part). The integer sums are kept in
  int64 per row (exact, as the float64 sums they are added to).
  """
  mask = (1 << label_bits) - 1
  n_rows, width = rows.shape
  word = np.zeros(1, np.uint32)
  as_float = word.view(np.float32)
  counts = np.zeros((4, mask + 1), np.int64)
  for r in range(n_rows):
    row = rows[r]
    sums = value_sums[r]
    counts[:] = 0
    seen = 0  # control values below the current run
    c = 0  # control values of the current run
    run_bits = row[0] >> label_bits
    word[0] = np.uint32(run_bits + base)
    value = np.float64(as_float[0])
    i = 0
    while i < width:
      key = row[i]
      label = key & mask
      if label == mask:  # padding sorts last
        break
      bits = key >> label_bits
      if bits != run_bits:
        seen += c
        c = 0
        run_bits = bits
        word[0] = np.uint32(bits + base)
        value = np.float64(as_float[0])
      m = i + 1
      while m < width and row[m] == key:
        m += 1
      n = m - i
      s = sums[label]
      for _ in range(n):  # one addition per value, in sorted order
        s += value
      sums[label] = s
      is_control = 1 if label == 0 else 0
      t = c + n
      counts[0, label] += n
      counts[1, label] += n * (seen + c) + is_control * (n * (n + 1) // 2)
      counts[2, label] += n * c
      counts[3, label] += (t * t * t - t) - (c * c * c - c)
      c += is_control * n
      i = m
    for g in range(mask + 1):
      nonzero[r, g] += counts[0, g]
      at_or_below[r, g] += counts[1, g]
      equal[r, g] += counts[2, g]
      ties[r, g] += counts[3, g]
