"""Rank each gene's values over all groups at once: what a Wilcoxon test against control needs.

The Wilcoxon rank-sum statistic of group `p` against the control group, and its tie correction,
only depend on where `p`'s values fall among the control values and on runs of equal values. One
sort per gene of every nonzero value (zeros are handled in closed form by `wilcoxon.py`), keyed by
(value, group) with the control as group 0, gives all of it for every group in one pass: within a
run of equal values the control values come first, so a value's count of control values at or
below it is a running count. Nothing of size cells x cells is ever formed.

This stage runs on the host, in NumPy and SciPy: on CPU, XLA's sort (8-18 M keys/s) and scans
(~80 M elements/s) are 2-5x slower than NumPy's, and this sort is the evaluator's main cost
(~5e8 keys for a VCC-sized file). The steps: pack each nonzero into one integer sort key (the
value's float32 bits, which order like the values, above the group's bits), regroup the keys by
gene with SciPy's CSR-to-CSC transposition, then sort batches of genes of similar size as padded
rows and reduce them with row-wise NumPy operations. Everything downstream is vectorised JAX.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

_ROWS_PER_CHUNK = 8192
_VALUES_PER_BATCH = 1 << 21  # keys sorted per NumPy call: a few MB, cache-sized


@dataclasses.dataclass(frozen=True)
class GroupRankSums:
  """Per (gene, group) sums over each group's nonzero values, ranked with the control's.

  Group 0 is the control. Every sum but `value_sums` is an exact integer held in float64.

  Attributes:
    group_sizes: [groups] cells per group (zeros included).
    nonzero: [genes, groups] number of nonzero values.
    control_at_or_below: [genes, groups] sum over the group's nonzero values of the number of
      nonzero control values <= it.
    control_equal: [genes, groups] sum over the group's nonzero values of the number of control
      values equal to it.
    tie_terms: [genes, groups] for group 0, sum over runs of equal nonzero control values of
      t^3 - t; for group p, what p's nonzero values add to that sum when pooled with the control.
    value_sums: [genes, groups] sum of the group's values (pseudobulk numerators, summed here
      while each gene's values are at hand, sparing another pass over a file-sized matrix).
  """
  group_sizes: np.ndarray
  nonzero: np.ndarray
  control_at_or_below: np.ndarray
  control_equal: np.ndarray
  tie_terms: np.ndarray
  value_sums: np.ndarray


def rank_sums(*, log1p_expr, group: np.ndarray, n_groups: int,
              overwrite_input: bool = False) -> GroupRankSums:
  """Ranks every gene's nonzero values of all groups together.

  Memory: besides the input, its nonzero values regrouped by gene with their cells (8 bytes
  each) and, unless `overwrite_input`, their sort keys (4 bytes each).

  Args:
    log1p_expr: [cells, genes] non-negative expression (dense or scipy sparse), float32.
    group: [cells] group of each cell: 0 for control, 1..n_groups-1 for perturbations, -1 to
      leave a cell out.
    n_groups: number of groups, control included.
    overwrite_input: a float32 CSR input may be overwritten with the sort keys (its values are
      garbage afterwards).

  Returns:
    GroupRankSums with [genes, n_groups] sums.
  """
  group = np.asarray(group, dtype=np.int64)
  keep = group >= 0
  own_csr = sp.issparse(log1p_expr) and log1p_expr.format == "csr" and \
      log1p_expr.dtype == np.float32
  csr = log1p_expr if own_csr else sp.csr_matrix(log1p_expr, dtype=np.float32)
  if not keep.all():
    csr = csr[np.flatnonzero(keep)]
  # Enough bits that the all-ones label (padding) is no group.
  label_bits = int(n_groups).bit_length()
  in_place = overwrite_input and csr is log1p_expr
  keys, base = _pack_keys(csr, group[keep], label_bits, in_place=in_place)
  by_gene = sp.csr_matrix((keys, csr.indices, csr.indptr), shape=csr.shape).tocsc()
  del keys
  sums = [np.zeros((csr.shape[1], n_groups)) for _ in range(5)]
  for genes, rows in _gene_batches(by_gene):
    for total, part in zip(sums, _batch_sums(rows, label_bits=label_bits, n_groups=n_groups,
                                             base=base)):
      total[genes] = part
  sizes = np.bincount(group[keep], minlength=n_groups)
  return GroupRankSums(sizes, *sums)


def _pack_keys(csr, label, label_bits, *, in_place=False):
  """Sort keys of the nonzero values, CSR order: (value bits - base) << label_bits | group.

  Positive float32 bits order like the values. 32-bit keys (sorting ~2x faster) when the
  values span few enough binades, as log1p of counts does; 64-bit otherwise. Stored zeros get
  the largest key, which marks them as padding.
  """
  bits = csr.data.view(np.uint32)
  low, high = (csr.data.min(), csr.data.max()) if csr.nnz else (1.0, 1.0)
  if low < 0:
    raise ValueError("ranking needs non-negative (log1p) values")
  stored_zeros = low == 0
  positive = csr.data[csr.data > 0] if stored_zeros else np.array([low], np.float32)
  base = int(positive.min().view(np.uint32)) if len(positive) else 0
  span = int(np.float32(high).view(np.uint32)) - base + 1
  dtype = np.uint32 if span < 2 ** (32 - label_bits) - 1 else np.uint64
  # Each chunk's keys are made from its own values only, so they may take their place.
  keys = bits if in_place and dtype == np.uint32 else np.empty(len(bits), dtype)
  for start in range(0, csr.shape[0], _ROWS_PER_CHUNK):
    stop = min(start + _ROWS_PER_CHUNK, csr.shape[0])
    lo, hi = csr.indptr[start], csr.indptr[stop]
    zeros = csr.data[lo:hi] <= 0 if stored_zeros else None
    out = keys[lo:hi]
    np.subtract(bits[lo:hi], dtype(base), out=out, dtype=dtype, casting="unsafe")
    np.left_shift(out, dtype(label_bits), out=out)
    out |= np.repeat(label[start:stop].astype(dtype), np.diff(csr.indptr[start:stop + 1]))
    if stored_zeros:
      out[zeros] = np.iinfo(dtype).max
  return keys, base


def _gene_batches(by_gene):
  """(gene indices, [genes, width] keys) for batches of genes of similar size, padded with the
  largest key; each gene's nonzero keys are at the front of its row."""
  counts = np.diff(by_gene.indptr)
  order = np.argsort(counts, kind="stable")
  widths = np.maximum(counts[order], 1)
  pad = np.iinfo(by_gene.dtype).max
  start = 0
  while start < len(order):
    # Widths grow along `order`: the most genes whose padded rows fit the batch budget.
    fits = np.arange(1, len(order) - start + 1) * widths[start:] <= _VALUES_PER_BATCH
    size = max(1, int(fits.sum()))
    genes = order[start:start + size]
    width = int(widths[start + size - 1])
    rows = np.full((len(genes), width), pad, by_gene.dtype)
    for i, g in enumerate(genes):
      lo, hi = by_gene.indptr[g], by_gene.indptr[g + 1]
      rows[i, :hi - lo] = by_gene.data[lo:hi]
    yield genes, rows
    start += size


def _batch_sums(rows, *, label_bits, n_groups, base):
  """[genes, groups] nonzero, control_at_or_below, control_equal, tie_terms, value_sums."""
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
  control_seen = np.cumsum(is_control, axis=1, dtype=np.int32).ravel()
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
  equal, ties = _tie_sums(np.flatnonzero(repeat), value_bits, label, control_seen, bins, n_bins)
  shape = (n_genes, mask + 1)
  return (nonzero, at_or_below, equal.reshape(shape)[:, :n_groups],
          ties.reshape(shape)[:, :n_groups], value_sums)


def _tie_sums(pairs, value_bits, label, control_seen, bins, n_bins):
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
