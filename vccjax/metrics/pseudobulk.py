"""Pseudobulk: the mean log1p expression of each group of cells (perturbation or control)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numba
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
      sums = _sparse_sums(log1p_expr if log1p_expr.format in ("csr", "csc")
                          else sp.csr_matrix(log1p_expr), group, n_groups)
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
  """group_sums of a CSR or CSC matrix: one compiled pass over its stored values, in place."""
  major_is_cell = x.format == "csr"
  if not major_is_cell:
    x = sp.csc_matrix(x)
  sums = np.zeros((n_groups, x.shape[1]))
  _add_stored_values(x.data, x.indices, x.indptr, major_is_cell, group, sums)
  return sums


@numba.njit(nogil=True, cache=True)
def _add_stored_values(data, indices, indptr, major_is_cell, group, sums):  # pragma: no cover
  """sums[group of the value's cell, its gene] += each stored value (float64); cells of group
  -1 are left out. A CSR's major axis is the cells, a CSC's the genes."""
  for major in range(len(indptr) - 1):
    for j in range(indptr[major], indptr[major + 1]):
      cell, gene = (major, indices[j]) if major_is_cell else (indices[j], major)
      if group[cell] >= 0:
        sums[group[cell], gene] += data[j]
