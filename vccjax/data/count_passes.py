"""The passes over a training file's counts, compiled: cell totals, group sums and moments, the
input-gene matrix.

`dataset.load_dataset` streams `X` in row ranges (`csr_ranges`): read straight into two reused
buffers, the next range read by one thread while the kernels work on the current one (they are
numba `nogil` functions, so the read and the arithmetic overlap). The arithmetic is NumPy's
where its float32 results must match scanpy's bit for bit (`log1p`, `expm1`), and a compiled
loop over the stored values elsewhere; sums are float64 over float32 values, so totals of
integer counts are exact, and group sums and moments equal those of sparse products (float32
partial sums) to float rounding.
"""

from __future__ import annotations

from concurrent import futures
from typing import Iterator

import h5py
import numba
import numpy as np
import scipy.sparse as sp

from vccjax.data import io

# Stored values per range: 2 x 8 B x this = 128 MiB of buffers for a backed file.
VALUES_PER_RANGE = 2**23


def csr_ranges(adata, *, with_indices: bool = True, values_per_range: int = VALUES_PER_RANGE,
               last_first: bool = False) -> Iterator[tuple]:
  """(start, stop, data, indices, indptr) over the rows of `X`, in order (or, `last_first`,
  from the last range back: a pass whose result does not depend on the order then starts
  where the previous pass ended, with the file's end still in the page cache).

  data: float32 stored values, indices: int32 genes (None without `with_indices`), indptr:
  int64 from 0. Backed CSR files are read with one HDF5 read per array and range, into two
  reused buffers (a range's arrays are overwritten two ranges later: use them before asking for
  the next one); other layouts go through `io.iter_row_chunks` (in order).
  """
  x = adata.X
  if getattr(x, "format", None) == "csr" and hasattr(x, "group"):
    yield from _backed_csr_ranges(x.group, with_indices, values_per_range, last_first)
    return
  if sp.issparse(x) and x.format == "csr":
    indptr = x.indptr.astype(np.int64)
    ranges = _row_ranges(indptr, values_per_range)
    for start, stop in (ranges[::-1] if last_first else ranges):
      lo, hi = indptr[start], indptr[stop]
      yield (start, stop, x.data[lo:hi].astype(np.float32, copy=False),
             x.indices[lo:hi].astype(np.int32, copy=False) if with_indices else None,
             indptr[start:stop + 1] - lo)
    return
  rows = max(1, values_per_range // max(adata.n_vars, 1))
  for start, chunk in io.iter_row_chunks(adata, rows):
    yield (start, start + chunk.shape[0], chunk.data, chunk.indices.astype(np.int32),
           chunk.indptr.astype(np.int64))


def _row_ranges(indptr: np.ndarray, values_per_range: int) -> list[tuple[int, int]]:
  """Consecutive (start, stop) row ranges of at most `values_per_range` values (or one row)."""
  ranges, start, n_rows = [], 0, len(indptr) - 1
  while start < n_rows:
    stop = int(np.searchsorted(indptr, indptr[start] + values_per_range, "right")) - 1
    stop = min(max(stop, start + 1), n_rows)
    ranges.append((start, stop))
    start = stop
  return ranges


def _backed_csr_ranges(group, with_indices: bool, values_per_range: int, last_first: bool):
  indptr = group["indptr"][:].astype(np.int64)
  ranges = _row_ranges(indptr, values_per_range)
  ranges = ranges[::-1] if last_first else ranges
  longest = max((int(indptr[b] - indptr[a]) for a, b in ranges), default=0)
  names = ("data", "indices") if with_indices else ("data",)
  dtypes = {"data": np.float32, "indices": np.int32}
  buffers = [{n: np.empty(longest, dtypes[n]) for n in names} for _ in range(2)]

  def read(k: int) -> None:
    start, stop = ranges[k]
    lo, hi = int(indptr[start]), int(indptr[stop])
    for name in names:
      if hi > lo:
        dataset = group[name].id
        space = dataset.get_space()
        space.select_hyperslab((lo,), (hi - lo,))
        dataset.read(h5py.h5s.create_simple((hi - lo,)), space, buffers[k % 2][name][:hi - lo])

  with futures.ThreadPoolExecutor(1, thread_name_prefix="vccjax-read") as reader:
    pending = reader.submit(read, 0) if ranges else None
    for k, (start, stop) in enumerate(ranges):
      pending.result()
      if k + 1 < len(ranges):
        pending = reader.submit(read, k + 1)
      n = int(indptr[stop] - indptr[start])
      buf = buffers[k % 2]
      yield (start, stop, buf["data"][:n], buf["indices"][:n] if with_indices else None,
             indptr[start:stop + 1] - indptr[start])


@numba.njit(nogil=True, cache=True)
def row_totals(data, indptr, out) -> bool:
  """out[r] = float64 sum of row r's values; False if any value is negative or not finite."""
  ok = True
  for r in range(len(indptr) - 1):
    total = 0.0
    for k in range(indptr[r], indptr[r + 1]):
      v = data[k]
      if not (v >= 0 and v < np.inf):
        ok = False
      total += v
    out[r] = total
  return ok


@numba.njit(nogil=True, cache=True)
def add_group_sums(data, indices, indptr, log1p_table, count_table, group, gene_sum, gene_sum_sq,
                   log1p_sums, count_sums, deferred):
  """Adds each cell's log1p values and normalised counts to its group's sums, and the log1p
  values and their squares to the per-gene moments (float64), for the counts the tables hold.

  Returns how many values it left (their positions in `deferred[:n]`): non-integer or large.
  """
  n_deferred = 0
  size = log1p_table.shape[1]
  for r in range(len(indptr) - 1):
    g = group[r]
    for k in range(indptr[r], indptr[r + 1]):
      x = data[k]
      if x < size and x == np.floor(x):
        v = np.float64(log1p_table[r, np.int64(x)])
        c = np.float64(count_table[r, np.int64(x)])
        j = indices[k]
        gene_sum[j] += v
        gene_sum_sq[j] += v * v
        log1p_sums[g, j] += v
        count_sums[g, j] += c
      else:
        deferred[n_deferred] = k
        n_deferred += 1
  return n_deferred


@numba.njit(nogil=True, cache=True)
def add_values(log1p, counts, genes, groups, gene_sum, gene_sum_sq, log1p_sums, count_sums):
  """`add_group_sums` for values computed elsewhere (each with its gene and group)."""
  for i in range(len(log1p)):
    v, j, g = np.float64(log1p[i]), genes[i], groups[i]
    gene_sum[j] += v
    gene_sum_sq[j] += v * v
    log1p_sums[g, j] += v
    count_sums[g, j] += np.float64(counts[i])


@numba.njit(nogil=True, cache=True)
def scatter_columns(data, indices, indptr, log1p_table, column, out, deferred):
  """out[r, column[gene]] = log1p(count / factor[r]) for the genes with column >= 0, for the
  counts the table holds; returns how many it left (positions in `deferred[:n]`)."""
  n_deferred = 0
  size = log1p_table.shape[1]
  for r in range(len(indptr) - 1):
    for k in range(indptr[r], indptr[r + 1]):
      c = column[indices[k]]
      if c >= 0:
        x = data[k]
        if x < size and x == np.floor(x):
          out[r, c] = log1p_table[r, np.int64(x)]
        else:
          deferred[n_deferred] = k
          n_deferred += 1
  return n_deferred


def row_of_values(indptr: np.ndarray, positions: np.ndarray) -> np.ndarray:
  """The row of each stored value at `positions`."""
  return np.searchsorted(indptr, positions, side="right") - 1
