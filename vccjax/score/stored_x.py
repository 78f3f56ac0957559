"""A file's `X`, in whichever layout it is stored, read and scaled (as cell-eval) in pieces.

Three direct readers, each into reused buffers: CSR by row ranges (`csr_rows`, the VCC layout),
dense by row ranges with its zeros dropped as it is read (`dense_rows`), CSC by blocks of genes
(`csc_columns`: never converted to rows, never densified). Anything else (an `X` anndata keeps
in memory, say) goes through anndata's row chunks. Every reader does the same two passes: the
scaling plan (counts or log1p, the cells' totals), then the scaled values.
"""

from __future__ import annotations

import functools
from typing import Iterator

import scipy.sparse as sp

from vccjax import metrics
from vccjax.data import csc_columns, csr_rows, dense_rows, io

Reader = "csr_rows.CsrRows | dense_rows.DenseRows | csc_columns.CscColumns | None"


def direct_reader(adata) -> Reader:
  """The direct reader of a backed file's `X` (CSR, dense or CSC on disk); None otherwise."""
  return (csr_rows.CsrRows.of(adata) or dense_rows.DenseRows.of(adata)
          or csc_columns.CscColumns.of(adata))


def scaling_plan(adata, stored: Reader, *, where: str, rows: int,
                 buffers: metrics.ScratchPool | None = None) -> metrics.ScalePlan:
  """The first pass: the file's ScalePlan (anndata's chunks of `rows` rows without a reader)."""
  if stored is None:
    return metrics.plan_scaling(io.iter_row_chunks(adata, rows), where=where,
                                sparse=io.x_is_sparse(adata))
  if isinstance(stored, csc_columns.CscColumns):
    return metrics.plan_scaling_of_columns(stored, where=where, buffers=buffers)
  return metrics.plan_scaling_of_rows(stored, where=where, buffers=buffers)


def ranking_chunks(adata, stored: Reader, plan: metrics.ScalePlan, *, rows: int) -> Iterator:
  """The second pass, for `metrics.summarize_chunks`: (start row, chunk) pairs, each chunk read
  and scaled by the worker thread that ranks it (a `ChunkReader` of about as many values as
  `rows` rows of the file hold, or a CSC file's `GeneBlockReader`)."""
  if stored is None:
    yield from anndata_scaled_chunks(adata, plan=plan, rows=rows)
    return
  values_per_chunk = _values_per_piece(adata, plan, rows)
  if isinstance(stored, csc_columns.CscColumns):
    for start, stop in stored.column_ranges(values_per_chunk):
      yield 0, metrics.GeneBlockReader(
          (adata.n_obs, stop - start), start, int(stored.colptr[stop] - stored.colptr[start]),
          functools.partial(metrics.read_scaled_columns, stored, start, stop, plan=plan))
    return
  for start, stop in row_ranges(stored, plan, values_per_chunk):
    # A chunk of counts is scaled as it is regrouped (`keys_by_gene`), not in a pass of its own.
    yield start, metrics.ChunkReader(
        (stop - start, adata.n_vars), int(plan.kept_indptr[stop] - plan.kept_indptr[start]),
        functools.partial(metrics.read_stored, stored, start, stop, plan=plan),
        metrics.row_scaling(plan, start, stop) if plan.counts else None)


def _values_per_piece(adata, plan: metrics.ScalePlan, rows: int) -> int:
  """The kept values `rows` average rows of the file hold (at least 1)."""
  return max(int(rows * plan.kept_indptr[-1] / max(adata.n_obs, 1)), 1)


def row_ranges(stored, plan: metrics.ScalePlan, values_per_chunk: int) -> list:
  """Row ranges of about `values_per_chunk` kept values; a dense file's also of at most twice
  that many values read (the buffer its rows are read into first)."""
  ranges = csr_rows.row_ranges(plan.kept_indptr, values_per_chunk)
  if not isinstance(stored, dense_rows.DenseRows):
    return ranges
  most = max(2 * values_per_chunk // max(stored.shape[1], 1), 1)
  return [(lo, min(lo + most, stop)) for start, stop in ranges for lo in range(start, stop, most)]


def anndata_scaled_chunks(adata, *, plan, rows: int) -> Iterator:
  """(start, float32 log1p chunk) over `X` through anndata, `rows` rows at a time."""
  return ((start, metrics.apply_scaling(chunk, plan=plan, start=start))
          for start, chunk in io.iter_row_chunks(adata, rows))


def scaled_piece_readers(adata, stored: Reader, plan: metrics.ScalePlan, *,
                         rows: int) -> Iterator:
  """The second pass, as pieces a worker thread reads itself: ((cells, genes), read) pairs,
  `read(scratch)` -> the piece's [cells, genes] float32 log1p, in `scratch`'s buffers (valid until
  they are used again). `cells` is a slice of rows (a CSR or dense file), or, for a CSC file, all
  of them (a CSC of a block of genes: its columns also come as a slice). Without a direct reader
  the piece was read by anndata, in this thread, when it came."""
  if stored is None:
    for start, chunk in anndata_scaled_chunks(adata, plan=plan, rows=rows):
      yield ((slice(start, start + chunk.shape[0]), slice(None)),
             lambda scratch, chunk=chunk: chunk)
    return
  values_per_piece = _values_per_piece(adata, plan, rows)
  if isinstance(stored, csc_columns.CscColumns):
    for start, stop in stored.column_ranges(values_per_piece):
      yield (slice(None), slice(start, stop)), functools.partial(
          _read_gene_block, stored, start, stop, plan=plan, n_cells=adata.n_obs)
    return
  for start, stop in row_ranges(stored, plan, values_per_piece):
    yield ((slice(start, stop), slice(None)),
           functools.partial(metrics.read_scaled, stored, start, stop, plan=plan))


def _read_gene_block(stored, start: int, stop: int, scratch, *, plan, n_cells: int):
  values, cells, colptr = metrics.read_scaled_columns(stored, start, stop, scratch, plan=plan)
  return sp.csc_matrix((values, cells, colptr), shape=(n_cells, stop - start), copy=False)
