"""The per-gene reduction of `ranksum.py`: sort a batch of genes' keys, then sum per group.

Each row holds one gene's sort keys ((value bits - base) << label_bits | group, padding = the
largest key). After a row-wise sort, a value's count of control values at or below it is a
running count of control keys, and runs of equal values give the tie terms; every per-group sum
is one `np.bincount` over (gene, group) bins.
"""

from __future__ import annotations

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
  n_genes, width = rows.shape
  kind = rows.dtype.type
  mask = 2 ** label_bits - 1  # padding carries this label, which is no group
  label = rows & kind(mask)
  bins = ((label.astype(np.int64) if kind is np.uint64 else label)
          + (mask + 1) * np.arange(n_genes)[:, None]).ravel()
  n_bins = n_genes * (mask + 1)

  def per_group(weights=None):
    out = np.bincount(bins, weights=weights, minlength=n_bins)
    return out.reshape(n_genes, mask + 1)[:, :n_groups]

  is_control = label == 0
  # (a uint8 view: NumPy sums bools several times slower)
  control_seen = np.cumsum(is_control.view(np.uint8), axis=1, dtype=np.int32).ravel()
  value_bits = (rows >> kind(label_bits)).ravel()
  # Padding decodes to junk values, which land in the padding's own bins.
  values = (value_bits + kind(base)).astype(np.uint32, copy=False).view(np.float32)
  with np.errstate(over="ignore", invalid="ignore"):
    value_sums = per_group(values)
  nonzero = per_group().astype(np.float64)
  at_or_below = per_group(control_seen)
  label = label.ravel()
  repeat = value_bits[1:] == value_bits[:-1]
  repeat &= label[1:] != mask
  repeat[width - 1::width] = False  # runs end with their gene's row
  equal, ties = tie_sums(repeat, label, bins, n_bins)
  shape = (n_genes, mask + 1)
  return (nonzero, at_or_below, equal.reshape(shape)[:, :n_groups],
          ties.reshape(shape)[:, :n_groups], value_sums)


def tie_sums(repeat, label, bins, n_bins):
  """(control_equal, tie_terms) [n_bins] from runs of equal values.

  Args:
    repeat: [n - 1] bool, flat value i equals value i + 1 (same gene, neither padding).
    label: [n] group of each flat value.
    bins: [n] (gene, group) bin of each flat value; n_bins: their number.

  Within a run of equal values the keys sort by group, so each group's part of a run (a
  sub-run of k values) is contiguous and the control's (c values) comes first. A group's k values
  raise the run's t^3 - t, pooled with the control, by f(c + k) - f(c) = 3c^2 k + 3c k^2 + k^3 - k,
  f(t) = t^3 - t, and each is equal to c control values; the control's own term is f(c). Both
  split into a weight per value: the j-th value of a sub-run (j = 1..k) adds
  3 (j (j - 1) + c (c + 2j - 1)) (with c = 0 for control values), which sums to the term over the
  sub-run. Values outside runs add nothing, so the work is on the values in runs only (~20% of a
  count file's).
  """
  follows = np.flatnonzero(repeat)  # i: value i + 1 equals value i
  if not len(follows):
    return np.zeros(n_bins), np.zeros(n_bins)
  in_run = np.zeros(len(label), bool)
  in_run[follows] = True
  in_run[follows + 1] = True
  at = np.flatnonzero(in_run)
  run_label = label[at]
  opens_run = np.empty(len(at), bool)  # a run's first value: it does not equal the one before
  opens_run[0] = True
  opens_run[1:] = ~repeat[at[1:] - 1]
  opens_sub_run = opens_run.copy()
  opens_sub_run[1:] |= run_label[1:] != run_label[:-1]
  index = np.arange(len(at))
  sub_run_start = np.maximum.accumulate(np.where(opens_sub_run, index, 0))
  run_start = np.maximum.accumulate(np.where(opens_run, index, 0))
  j = (index - sub_run_start + 1).astype(np.float64)
  is_control = run_label == 0
  controls = np.cumsum(is_control)  # a value's run's controls all come before it
  c = (controls - controls[run_start] + is_control[run_start]).astype(np.float64)
  c[is_control] = 0.0
  where = bins[at]
  return (np.bincount(where, weights=c, minlength=n_bins),
          np.bincount(where, weights=3.0 * (j * (j - 1.0) + c * (c + 2.0 * j - 1.0)),
                      minlength=n_bins))
