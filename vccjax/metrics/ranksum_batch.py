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
  equal, ties = tie_sums(np.flatnonzero(repeat), value_bits, label, control_seen, bins, n_bins)
  shape = (n_genes, mask + 1)
  return (nonzero, at_or_below, equal.reshape(shape)[:, :n_groups],
          ties.reshape(shape)[:, :n_groups], value_sums)


def tie_sums(pairs, value_bits, label, control_seen, bins, n_bins):
  """Sums over runs of equal values (flat positions `pairs` equal their successor); values
  outside such runs add nothing to them."""
  if not len(pairs):
    return np.zeros(n_bins), np.zeros(n_bins)
  # A run's entries: its consecutive `pairs`, then the one after the last of them.
  run_end = np.ones(len(pairs), bool)
  run_end[:-1] = pairs[1:] != pairs[:-1] + 1
  at = np.insert(pairs, np.flatnonzero(run_end) + 1, pairs[run_end] + 1)
  value, group, seen = value_bits[at], label[at], control_seen[at]
  is_control = group == 0
  k = np.arange(len(at))
  new_run = np.ones(len(at), bool)
  new_run[1:] = (value[1:] != value[:-1]) | (at[1:] != at[:-1] + 1)
  run_start = np.maximum.accumulate(np.where(new_run, k, 0))
  # Control values of the run up to this one: for a perturbed value, all of the run's.
  b = seen - seen[run_start] + is_control[run_start]
  new_run[1:] |= group[1:] != group[:-1]
  group_start = np.maximum.accumulate(np.where(new_run, k, 0))
  # The j-th value of a group's run of `a` raises the run's t^3 - t by 3m(m-1), m = j + b.
  m = np.where(is_control, b, k - group_start + 1 + b).astype(np.float64)
  ties = np.bincount(bins[at], weights=3.0 * m * (m - 1.0), minlength=n_bins)
  equal = np.bincount(bins[at], weights=np.where(is_control, 0, b), minlength=n_bins)
  return equal, ties
