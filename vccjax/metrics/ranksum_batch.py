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
  nonzero, at_or_below = _counts_and_sums(per_group, control_seen, width)
  label = label.ravel()
  repeat = value_bits[1:] == value_bits[:-1]
  repeat &= label[1:] != mask
  repeat[width - 1::width] = False  # runs end with their gene's row
  equal, ties = tie_sums(repeat, label, bins, n_bins)
  shape = (n_genes, mask + 1)
  return (nonzero, at_or_below, equal.reshape(shape)[:, :n_groups],
          ties.reshape(shape)[:, :n_groups], value_sums)


def _counts_and_sums(per_group, weights, width):
  """(per_group(), per_group(weights)) of non-negative integer weights below `width`.

  One bincount instead of two where it is exact: each value weighs `weights + unit`, its bin's
  sum is count * unit + the weights' sum (< width^2 <= unit), all below 2^53.
  """
  unit = 2.0 ** (2 * max(int(width), 1).bit_length())
  if width * unit >= 2.0 ** 53:
    return per_group().astype(np.float64), per_group(weights)
  packed = per_group(np.add(weights, unit, dtype=np.float64))
  count = np.floor(packed / unit)
  return count, packed - count * unit


def tie_sums(repeat, label, bins, n_bins):
  """(control_equal, tie_terms) [n_bins] from runs of equal values.

  Args:
    repeat: [n - 1] bool, flat value i equals value i + 1 (same gene, neither padding).
    label: [n] group of each flat value.
    bins: [n] (gene, group) bin of each flat value; n_bins: their number.

  Within a run of equal values the keys sort by group, so each group's part of a run (k values)
  is contiguous and the control's (c values) comes first. A group's part raises the run's
  t^3 - t, pooled with the control, by f(c + k) - f(c), f(t) = t^3 - t, and each of its values
  equals c control values; the control's own term is f(c), its part's with c = 0. So the work is
  a few boolean passes to find where parts start, then work on the parts only (~20% of a count
  file's values).
  """
  n = len(label)
  equal_before = np.zeros(n + 2, bool)  # [i + 1]: value i equals value i - 1
  equal_before[2:n + 1] = repeat
  here, after, before = equal_before[1:n + 1], equal_before[2:], equal_before[:n]
  # Where a part opens (a run opens, or the group changes inside one), and just past each run.
  boundary = (after | before) & ~here
  new_group = np.zeros(n, bool)
  np.not_equal(label[1:], label[:-1], out=new_group[1:])
  new_group &= here
  boundary |= new_group
  at = np.flatnonzero(boundary)
  if not len(at):
    return np.zeros(n_bins), np.zeros(n_bins)
  k = np.diff(at, append=n)
  part = np.flatnonzero(here[at] | after[at])  # the others open values that are in no run
  at, k = at[part], k[part].astype(np.float64)
  opens_run = ~here[at]
  is_control = label[at] == 0
  run = np.cumsum(opens_run) - 1
  control_parts = np.flatnonzero(opens_run & is_control)
  controls_of_run = np.zeros(int(run[-1]) + 1)
  controls_of_run[run[control_parts]] = k[control_parts]
  c = np.where(is_control, 0.0, controls_of_run[run])
  where = bins[at]
  t = c + k
  return (np.bincount(where, weights=k * c, minlength=n_bins),
          np.bincount(where, weights=t * t * t - t - (c * c * c - c), minlength=n_bins))
