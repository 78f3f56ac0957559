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
  raise the run's t^3 - t, pooled with the control, by f(c + k) - f(c), f(t) = t^3 - t; each is
  equal to c control values. The control's own term is f(c). Values outside runs add nothing, so
  everything after finding the runs works on their values only (~10% of a count file's).
  """
  follows = np.flatnonzero(repeat)  # i: value i + 1 equals value i
  if not len(follows):
    return np.zeros(n_bins), np.zeros(n_bins)
  # The values in runs, in order: every i, and i + 1 where i ends a chain of repeats.
  chain_end = np.flatnonzero(np.diff(follows) != 1)
  chain_end = np.append(chain_end, len(follows) - 1)
  at = np.insert(follows, chain_end + 1, follows[chain_end] + 1)
  opens_run = np.ones(len(at), bool)  # a run's first value: it does not equal the one before
  opens_run[at > 0] = ~repeat[at[at > 0] - 1]
  run_label = label[at]
  sub_start = opens_run.copy()
  sub_start[1:] |= run_label[1:] != run_label[:-1]
  starts = np.flatnonzero(sub_start)
  k = np.diff(starts, append=len(at)).astype(np.float64)
  is_control = run_label[starts] == 0
  first = opens_run[starts]
  controls_of_run = np.where(is_control[first], k[first], 0.0)
  c = controls_of_run[np.cumsum(first) - 1]
  t = c + k
  ties = np.where(is_control, k * k * k - k, t * t * t - t - (c * c * c - c))
  where = bins[at[starts]]
  return (np.bincount(where, weights=np.where(is_control, 0.0, k * c), minlength=n_bins),
          np.bincount(where, weights=ties, minlength=n_bins))
