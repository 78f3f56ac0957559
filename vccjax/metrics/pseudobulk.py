"""Pseudobulk: the mean log1p expression of each group of cells (perturbation or control)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

_CHUNK_VALUES = 1 << 24  # values per jitted step: bounded memory, one compiled shape


def group_means(*, log1p_expr, group: np.ndarray, n_groups: int) -> np.ndarray:
  """Mean expression of each group, accumulated in float64.

  Args:
    log1p_expr: [cells, genes] log1p expression, dense or scipy sparse.
    group: [cells] group of each cell in 0..n_groups-1, or -1 to leave the cell out.
    n_groups: number of groups.

  Returns:
    [n_groups, genes] float64 means (NaN for an empty group).
  """
  group = np.asarray(group, dtype=np.int64)
  sums = group_sums(log1p_expr=log1p_expr, group=group, n_groups=n_groups)
  sizes = np.bincount(group[group >= 0], minlength=n_groups)
  with np.errstate(invalid="ignore", divide="ignore"):
    return sums / sizes[:, None]


def group_sums(*, log1p_expr, group: np.ndarray, n_groups: int) -> np.ndarray:
  """Sum of each group's expression, float64: [cells, genes] -> [n_groups, genes] (see above)."""
  group = np.asarray(group, dtype=np.int64)
  with jax.enable_x64(True):
    if sp.issparse(log1p_expr):
      sums = _sparse_sums(sp.csr_matrix(log1p_expr), group, n_groups)
    else:
      sums = _dense_sums(np.asarray(log1p_expr), group, n_groups)
  return sums.reshape(n_groups, log1p_expr.shape[1])


def _bucket(n: int, cap: int) -> int:
  """Chunk length: `cap`, or the power of two above `n` for small inputs (few compiled shapes)."""
  return min(cap, 1 << max(n - 1, 1).bit_length())


def _dense_sums(x, group, n_groups):
  rows = _bucket(x.shape[0], max(1, _CHUNK_VALUES // max(x.shape[1], 1)))
  total = jnp.zeros((n_groups + 1, x.shape[1]), jnp.float64)
  for start in range(0, x.shape[0], rows):
    chunk = np.asarray(x[start:start + rows], dtype=np.float32)
    ids = np.where(group[start:start + rows] >= 0, group[start:start + rows], n_groups)
    pad = rows - len(chunk)
    if pad:  # one compiled shape: pad with cells of a discarded extra group
      chunk = np.pad(chunk, ((0, pad), (0, 0)))
      ids = np.pad(ids, (0, pad), constant_values=n_groups)
    total = _add_rows(total, chunk, ids)
  return np.asarray(total[:n_groups])


@functools.partial(jax.jit, donate_argnums=0)
def _add_rows(total, chunk, ids):
  return total + jax.ops.segment_sum(chunk.astype(jnp.float64), ids,
                                     num_segments=total.shape[0])


def _sparse_sums(x, group, n_groups):
  n_genes = x.shape[1]
  n_bins = (n_groups + 1) * n_genes
  row_group = np.where(group >= 0, group, n_groups)
  total = jnp.zeros(n_bins, jnp.float64)
  step = _bucket(x.nnz, _CHUNK_VALUES)
  for lo in range(0, x.nnz, step):
    hi = min(lo + step, x.nnz)
    # Rows that overlap [lo, hi) and how many of their values fall inside it.
    r0 = np.searchsorted(x.indptr, lo, side="right") - 1
    r1 = np.searchsorted(x.indptr, hi, side="left")
    bounds = np.clip(x.indptr[r0:r1 + 1], lo, hi)
    bins = np.repeat(row_group[r0:r1] * n_genes, np.diff(bounds)) + x.indices[lo:hi]
    values = np.asarray(x.data[lo:hi], dtype=np.float32)
    pad = step - (hi - lo)
    total = _add_values(total, np.pad(values, (0, pad)), np.pad(bins, (0, pad)))
  return np.asarray(total[:n_groups * n_genes])


@functools.partial(jax.jit, donate_argnums=0)
def _add_values(total, values, bins):
  return total + jax.ops.segment_sum(values.astype(jnp.float64), bins,
                                     num_segments=total.shape[0])
