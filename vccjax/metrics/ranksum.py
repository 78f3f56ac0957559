"""Rank each gene's values across all groups at once: the sums a Wilcoxon test against control needs.

The Wilcoxon rank-sum statistic of group `p` against the control group, and its tie correction,
only depend on where `p`'s values fall among the control values and on runs of equal values. One
sort per gene of every nonzero value (zeros are handled in closed form by `wilcoxon.py`), keyed by
(value, group) with the control as group 0, gives all of it for every group in one pass: within a
run of equal values the control values come first, so a value's count of control values at or
below it is a running count. Nothing of size cells x cells is ever formed.

This stage runs on the host, in NumPy, gene block by gene block in worker threads: on CPU, XLA's
sort (8-18 M keys/s) and its scans (~80 M elements/s) are 2-5x slower than NumPy's, and this sort
is the evaluator's whole cost (~5e8 keys per VCC-sized file). Everything downstream of these sums
is vectorised JAX.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

import numpy as np
import scipy.sparse as sp

_GENES_PER_BLOCK = 128


@dataclasses.dataclass(frozen=True)
class GroupRankSums:
  """Per (gene, group) sums over each group's nonzero values, ranked with the control's.

  Group 0 is the control. Every sum is an exact integer held in float64.

  Attributes:
    group_sizes: [groups] cells per group (zeros included).
    nonzero: [genes, groups] number of nonzero values.
    control_at_or_below: [genes, groups] sum over the group's nonzero values of the number of
      nonzero control values <= it.
    control_equal: [genes, groups] sum over the group's nonzero values of the number of control
      values equal to it.
    tie_terms: [genes, groups] for group 0, sum over runs of equal nonzero control values of
      t^3 - t; for group p, what p's nonzero values add to that sum when pooled with the control.
  """
  group_sizes: np.ndarray
  nonzero: np.ndarray
  control_at_or_below: np.ndarray
  control_equal: np.ndarray
  tie_terms: np.ndarray


def rank_sums(*, log1p_expr, group: np.ndarray, n_groups: int,
              threads: int | None = None) -> GroupRankSums:
  """Ranks every gene's nonzero values of all groups together.

  Args:
    log1p_expr: [cells, genes] non-negative expression (dense or scipy sparse), float32.
    group: [cells] group of each cell: 0 for control, 1..n_groups-1 for perturbations, -1 to
      leave a cell out.
    n_groups: number of groups, control included.
    threads: worker threads (default: the CPUs this process may use).

  Returns:
    GroupRankSums with [genes, n_groups] sums.
  """
  group = np.asarray(group, dtype=np.int64)
  n_genes = log1p_expr.shape[1]
  label_bits = max(1, int(n_groups - 1).bit_length())
  label = np.where(group >= 0, group, 0).astype(np.uint64 if label_bits > 16 else np.uint16)
  keep = group >= 0
  if sp.issparse(log1p_expr):
    source = _CscBlocks(sp.csc_matrix(log1p_expr, dtype=np.float32), label, keep)
  else:
    source = _DenseBlocks(np.asarray(log1p_expr), label, keep)
  starts = list(range(0, n_genes, _GENES_PER_BLOCK))
  threads = threads or len(os.sched_getaffinity(0))

  def run(g0):
    values, labels, gene_ptr = source.block(g0, min(g0 + _GENES_PER_BLOCK, n_genes))
    return _block_sums(values, labels, gene_ptr, label_bits=label_bits, n_groups=n_groups)

  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    parts = list(pool.map(run, starts))
  stacked = [np.concatenate(arrays) for arrays in zip(*parts)]
  sizes = np.bincount(group[keep], minlength=n_groups)
  return GroupRankSums(sizes, *stacked)


class _CscBlocks:
  """Gene blocks of a CSC matrix: nonzero values, their groups, per-gene offsets."""

  def __init__(self, csc, label, keep):
    self.csc, self.label, self.keep = csc, label, keep

  def block(self, g0, g1):
    lo, hi = self.csc.indptr[g0], self.csc.indptr[g1]
    rows = self.csc.indices[lo:hi]
    values = self.csc.data[lo:hi]
    mask = (values > 0) & self.keep[rows]
    kept_before = np.concatenate([[0], np.cumsum(mask)])
    gene_ptr = kept_before[self.csc.indptr[g0:g1 + 1] - lo]
    return values[mask], self.label[rows[mask]], gene_ptr


class _DenseBlocks:
  """Gene blocks of a dense [cells, genes] matrix, transposed so each gene is contiguous."""

  def __init__(self, dense, label, keep):
    self.dense, self.label, self.keep = dense, label, keep
    self.all_rows = bool(keep.all())

  def block(self, g0, g1):
    sub = self.dense[:, g0:g1] if self.all_rows else self.dense[self.keep, g0:g1]
    by_gene = np.ascontiguousarray(sub.T, dtype=np.float32)
    label = self.label if self.all_rows else self.label[self.keep]
    mask = by_gene > 0
    gene_ptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
    return by_gene[mask], np.broadcast_to(label, by_gene.shape)[mask], gene_ptr


def _pack_keys(values, labels, label_bits):
  """Sort keys (value, group): positive float32 bits order like the values themselves."""
  bits = values.view(np.uint32)
  if not len(bits):
    return bits
  low = bits.min()
  # 32-bit keys sort ~2x faster; they fit when the block's values span few binades.
  if int(bits.max()) - int(low) < 2 ** (32 - label_bits):
    return ((bits - low) << np.uint32(label_bits)) | labels.astype(np.uint32)
  return (bits.astype(np.uint64) << np.uint64(label_bits)) | labels.astype(np.uint64)


def _block_sums(values, labels, gene_ptr, *, label_bits, n_groups):
  keys = _pack_keys(values, labels, label_bits)
  n_genes = len(gene_ptr) - 1
  out = [np.zeros((n_genes, n_groups)) for _ in range(4)]
  for g in range(n_genes):
    gene_keys = keys[gene_ptr[g]:gene_ptr[g + 1]]
    if len(gene_keys):
      _gene_sums(gene_keys, label_bits, n_groups, [o[g] for o in out])
  return out


def _gene_sums(keys, label_bits, n_groups, out):
  """Fills one gene's rows of (nonzero, control_at_or_below, control_equal, tie_terms)."""
  nonzero, at_or_below, equal, ties = out
  keys.sort()
  group = (keys & (2 ** label_bits - 1)).astype(np.intp)
  is_control = group == 0
  control_seen = np.cumsum(is_control)
  nonzero[:] = np.bincount(group, minlength=n_groups)
  at_or_below[:] = np.bincount(group, weights=control_seen, minlength=n_groups)
  value = keys >> label_bits
  repeat = value[1:] == value[:-1]
  if repeat.any():
    _tie_sums(value, group, control_seen, repeat, n_groups, equal, ties)


def _tie_sums(value, group, control_seen, repeat, n_groups, equal, ties):
  """Sums over runs of equal values; values outside such runs add nothing to them."""
  in_run = np.zeros(len(value), bool)
  in_run[1:] |= repeat
  in_run[:-1] |= repeat
  at = np.flatnonzero(in_run)
  value, group, seen = value[at], group[at], control_seen[at]
  is_control = group == 0
  k = np.arange(len(at))
  new_run = np.ones(len(at), bool)
  new_run[1:] = value[1:] != value[:-1]
  run_start = np.maximum.accumulate(np.where(new_run, k, 0))
  # Control values of the run up to this one: for a perturbed value, all of the run's.
  b = seen - seen[run_start] + is_control[run_start]
  new_group_run = new_run.copy()
  new_group_run[1:] |= group[1:] != group[:-1]
  group_start = np.maximum.accumulate(np.where(new_group_run, k, 0))
  # The j-th value of a group's run of `a` raises the run's t^3 - t by 3m(m-1), m = j + b.
  m = np.where(is_control, b, k - group_start + 1 + b).astype(np.float64)
  ties[:] = np.bincount(group, weights=3.0 * m * (m - 1.0), minlength=n_groups)
  equal[:] = np.bincount(group, weights=np.where(is_control, 0, b), minlength=n_groups)
