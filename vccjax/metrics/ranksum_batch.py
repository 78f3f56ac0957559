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
  equal to c control values. The control's own term is f(c). Values outside runs add nothing.
  """
  if not repeat.any():
    return np.zeros(n_bins), np.zeros(n_bins)
  same_group = label[1:] == label[:-1]
  same_group &= repeat  # i and i + 1 in one sub-run
  in_run = np.zeros(len(label), bool)
  in_run[1:] = repeat
  opens_run = ~in_run  # (where in_run: the value does not equal the one before it)
  in_run[:-1] |= repeat
  sub_start = in_run.copy()
  sub_start[1:] &= ~same_group
  sub_end = in_run
  sub_end[:-1] &= ~same_group
  starts = np.flatnonzero(sub_start)
  k = (np.flatnonzero(sub_end) - starts + 1).astype(np.float64)
  is_control = label[starts] == 0
  first = opens_run[starts]
  controls_of_run = np.where(is_control[first], k[first], 0.0)
  c = controls_of_run[np.cumsum(first) - 1]
  ties = np.where(is_control, k**3 - k, (c + k)**3 - (c + k) - (c**3 - c))
  at = bins[starts]
  return (np.bincount(at, weights=np.where(is_control, 0.0, k * c), minlength=n_bins),
          np.bincount(at, weights=ties, minlength=n_bins))
