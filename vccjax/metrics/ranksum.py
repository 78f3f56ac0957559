"""Rank each gene's values over all groups at once: what a Wilcoxon test against control needs.

The Wilcoxon rank-sum statistic of group `p` against the control group, and its tie correction,
only depend on where `p`'s values fall among the control values and on runs of equal values. One
sort per gene of every nonzero value (zeros are handled in closed form by `wilcoxon.py`), keyed by
(value, group) with the control as group 0, gives all of it for every group in one pass: within a
run of equal values the control values come first, so a value's count of control values at or
below it is a running count. Nothing of size cells x cells is ever formed.

The work streams over row chunks of cells, so a file never has to be in memory at once:
each chunk's nonzero values become integer sort keys (the value's float32 bits, which order like
the values, above the group's bits) regrouped by gene (`GenePieces`, one compiled pass:
`keys_by_gene.py`; a CSC file's blocks of genes need no regrouping); then batches of genes of
similar size are each gathered from every chunk's keys, sorted and reduced in one compiled pass
per gene (`ranksum_batch.py`). Both stages run on a thread pool (the compiled passes, NumPy
and SciPy release the GIL); a chunk may be a `ChunkReader` (or a `GeneBlockReader`), read and
scaled by the worker itself into a reused `Scratch` lent by a `ScratchPool`. Memory: 4 bytes
per nonzero value (the keys, in one buffer of the pool when their number is known, so a second
file reuses the first one's pages), plus ~0.3 GB of buffers per worker at the default chunk
size. On CPU, XLA's sort and scans measured 2-5x slower than NumPy's, and NumPy's vectorised
row sort plus a separate reduction 2x slower than the compiled bucket sort and reduction.
Everything downstream is vectorised JAX.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from vccjax.metrics import keys_by_gene, ranksum_batch, value_scan
from vccjax.metrics.scratch import Scratch, ScratchPool, in_order

_VALUES_PER_CHUNK = 1 << 24  # stored values per row chunk: ~0.3 GB of work memory each
_VALUES_PER_BATCH = 1 << 19  # keys per batch of genes, a thread's unit of work
_MARGIN_ULPS = 64  # slack on a value range predicted before the values are computed


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


@dataclasses.dataclass(frozen=True)
class KeyFormat:
  """How a positive float32 value and its group pack into one sort key.

  key = (value bits - base) << label_bits | group; the all-ones label marks padding.
  """
  label_bits: int
  base: int
  dtype: type

  @classmethod
  def for_values(cls, *, low: float, high: float, n_groups: int) -> "KeyFormat":
    """Keys for positive values in [low, high] (bounds may be loose) and `n_groups` groups.

    32-bit keys (sorting ~2x faster) when the values span few enough binades, as log1p of
    counts does; 64-bit otherwise.
    """
    label_bits = int(n_groups).bit_length()  # enough that the all-ones label is no group
    low_bits = int(np.float32(max(low, np.finfo(np.float32).tiny)).view(np.uint32))
    high_bits = int(np.float32(min(max(high, low), np.finfo(np.float32).max)).view(np.uint32))
    base = max(low_bits - _MARGIN_ULPS, 0)
    span = min(high_bits + _MARGIN_ULPS, 0x7F800000) - base + 1
    dtype = np.uint32 if span < 2 ** (32 - label_bits) - 1 else np.uint64
    if label_bits + 31 > 64:
      raise ValueError(f"{n_groups} groups are too many to rank")
    return cls(label_bits, 0 if dtype is np.uint64 else base, dtype)


@dataclasses.dataclass(frozen=True)
class GenePieces:
  """One row chunk's sort keys, regrouped by gene: gene g's are keys[colptr[g]:colptr[g + 1]]."""
  colptr: np.ndarray
  keys: np.ndarray


def rank_sums(*, log1p_expr, group: np.ndarray, n_groups: int,
              threads: int | None = None) -> GroupRankSums:
  """Ranks every gene's nonzero values of all groups together, for an in-memory matrix.

  Args:
    log1p_expr: [cells, genes] non-negative expression (dense or scipy sparse), or a list of
      such blocks of rows, the cells one block after the other (ranked as they are: never
      stacked into one matrix, a copy of them all).
    group: [cells] group of each cell: 0 for control, 1..n_groups-1 for perturbations, -1 to
      leave a cell out.
    n_groups: number of groups, control included.
    threads: worker threads (default: the CPUs this process may use).

  Returns:
    GroupRankSums with [genes, n_groups] sums.
  """
  group = np.asarray(group, dtype=np.int64)
  blocks = row_blocks(log1p_expr)
  found = [value_scan.scan_values(b.data, fraction_epsilon=0) for b in blocks]
  nnz = sum(b.nnz for b in blocks)
  if nnz and min(f[1] for f in found) < 0:
    raise ValueError("ranking needs non-negative (log1p) values")
  low, high = min(f[4] for f in found), max(f[2] for f in found)
  low, high = (low, high) if np.isfinite(low) else (1.0, 1.0)
  step = rows_per_chunk(nnz / max(sum(b.shape[0] for b in blocks), 1))

  def chunks():
    first = 0
    for block in blocks:
      for start, view in row_views(block, step):
        yield group[first + start:first + start + view.shape[0]], view
      first += block.shape[0]

  return rank_sums_of_chunks(
      chunks=chunks(), n_genes=blocks[0].shape[1], n_groups=n_groups, threads=threads,
      key_format=KeyFormat.for_values(low=low, high=high, n_groups=n_groups), n_values=nnz)


def row_blocks(expr) -> list[sp.csr_matrix]:
  """A [cells, genes] matrix (dense or scipy sparse), or a list of blocks of its rows, as the
  list of those blocks in float32 CSR (a float32 CSR is not copied, nor are blocks stacked)."""
  blocks = expr if isinstance(expr, (list, tuple)) else [expr]
  blocks = [sp.csr_matrix(b, dtype=np.float32) for b in blocks]
  if len({b.shape[1] for b in blocks}) != 1:
    raise ValueError("the blocks of rows have different numbers of genes")
  return blocks


def row_views(csr: sp.csr_matrix, rows: int) -> Iterator[tuple[int, sp.csr_matrix]]:
  """(first row, [rows, genes] CSR) chunks of a CSR matrix, `rows` rows at a time, sharing its
  arrays. Row slicing copies them into fresh pages (a third of the scorer's page faults when it
  ranked the training controls that way), and so does scipy's constructor given a small view of
  a large array: the arrays are set after it."""
  for start in range(0, csr.shape[0], rows):
    stop = min(start + rows, csr.shape[0])
    lo, hi = csr.indptr[start], csr.indptr[stop]
    view = sp.csr_matrix((stop - start, csr.shape[1]), dtype=csr.dtype)
    view.data, view.indices = csr.data[lo:hi], csr.indices[lo:hi]
    view.indptr = csr.indptr[start:stop + 1] - lo
    yield start, view


@dataclasses.dataclass(frozen=True)
class ChunkReader:
  """A row chunk that the worker thread regrouping it reads (and scales) itself, into that
  thread's `Scratch`: so the chunk's buffers are reused from one chunk to the next.

  Attributes:
    shape: (rows, genes) of the chunk.
    nnz: its stored values.
    read: Scratch -> [rows, genes] float32 CSR log1p (or counts, with `scaling`), valid until
      the Scratch is used again.
    scaling: None, or (factor [rows], table [rows, count_log1p.TABLE_SIZE]) of the chunk's
      cells: `read` gives counts, scaled as they are regrouped (`keys_by_gene.regroup`).
  """
  shape: tuple[int, int]
  nnz: int
  read: Callable[[Scratch], sp.csr_matrix]
  scaling: tuple | None = None


@dataclasses.dataclass(frozen=True)
class GeneBlockReader:
  """A block of genes of every cell (a CSC file's columns), read and scaled by the worker
  thread that ranks it, into that thread's `Scratch`.

  Attributes:
    shape: (cells, genes) of the block: every cell of the file.
    first_gene: the block's first gene.
    nnz: its stored values.
    read: Scratch -> (values [n] float32 log1p, cells [n] their rows, colptr [genes + 1]).
  """
  shape: tuple[int, int]
  first_gene: int
  nnz: int
  read: Callable[[Scratch], tuple]


def rank_sums_of_chunks(*, chunks: Iterable[tuple[np.ndarray, "sp.csr_matrix | ChunkReader"]],
                        n_genes: int, n_groups: int, key_format: KeyFormat,
                        threads: int | None = None, buffers: ScratchPool | None = None,
                        n_values: int | None = None) -> GroupRankSums:
  """`rank_sums` over row chunks of cells that are read (e.g. from a file) one at a time.

  Args:
    chunks: (group [rows], chunk) pairs; chunk: [rows, genes] float32 CSR log1p, or a
      `ChunkReader` of it; groups as in `rank_sums`. Or (group [cells], `GeneBlockReader`)
      pairs, each a block of genes of all the cells (none left out), blocks of distinct genes.
    n_genes: genes (columns) of every chunk.
    n_groups: number of groups, control included.
    key_format: `KeyFormat.for_values` of bounds on the chunks' positive values.
    threads: worker threads (default: the CPUs this process may use).
    buffers: where the workers' buffers come from (pass the same pool to successive calls to
      reuse them); must not serve another call at the same time.
    n_values: the chunks' stored values in all, if known: their sort keys then go to one
      buffer of `buffers`, reused by the next call, instead of new memory per chunk (copied
      together once all are made: twice the memory).
  """
  threads = threads or len(os.sched_getaffinity(0))
  buffers = buffers or ScratchPool()
  arena = buffers.shared.array("sort_keys", n_values, key_format.dtype) if n_values else None
  sizes = np.zeros(n_groups, np.int64)

  def regroup(group, chunk, out):
    with buffers.lease() as scratch:
      if isinstance(chunk, GeneBlockReader):
        values, cells, colptr = chunk.read(scratch)
        return gene_block_pieces(values, cells, colptr, start=chunk.first_gene, n_genes=n_genes,
                                 group=group, key_format=key_format, scratch=scratch, out=out)
      scaling = None
      if isinstance(chunk, ChunkReader):
        chunk, scaling = chunk.read(scratch), chunk.scaling
      keep = group >= 0
      if not keep.all():
        group, chunk = group[keep], chunk[np.flatnonzero(keep)]
        scaling = scaling and tuple(a[keep] for a in scaling)
      return gene_pieces(chunk, group=group, key_format=key_format, out=out, scaling=scaling,
                         scratch=scratch)

  offsets = []  # where each piece's keys start in the arena (None: in memory of its own)

  def to_regroup():  # (group, chunk, where its keys go), counting the groups' cells
    nonlocal sizes
    filled = 0
    for group, chunk in chunks:
      group = np.asarray(group, dtype=np.int64)
      if not isinstance(chunk, GeneBlockReader):
        sizes += np.bincount(group[group >= 0], minlength=n_groups)
      elif (group < 0).any():
        raise ValueError("a block of genes holds every cell: none may be left out")
      else:  # every block holds every cell
        sizes = np.bincount(group, minlength=n_groups)
      out = None
      if arena is not None and filled + chunk.nnz <= len(arena):
        out, filled = arena[filled:filled + chunk.nnz], filled + chunk.nnz
      offsets.append(None if out is None else filled - chunk.nnz)
      yield group, chunk, out

  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    pieces = list(in_order(pool, regroup, to_regroup(), ahead=threads))
    keys, starts = _flat_keys(pieces, offsets, arena, n_genes=n_genes,
                              dtype=key_format.dtype)
    del pieces
    sums = [np.zeros((n_genes, n_groups)) for _ in range(5)]

    def reduce(genes):
      for total, part in zip(sums, ranksum_batch.gene_sums(
          keys, starts, genes, label_bits=key_format.label_bits, n_groups=n_groups,
          base=key_format.base)):
        total[genes] = part  # batches hold disjoint genes

    list(pool.map(reduce, gene_batches(starts)))
  return GroupRankSums(sizes, *sums)


def _flat_keys(pieces: list[GenePieces], offsets: list, arena: np.ndarray | None, *,
               n_genes: int, dtype) -> tuple[np.ndarray, np.ndarray]:
  """(keys [n], starts [pieces, genes + 1]) of `ranksum_batch.gene_sums`: the arena where every
  piece's keys were written to it (their `offsets`), else the pieces' keys copied after one
  another."""
  if arena is None or any(o is None for o in offsets):
    keys = (np.concatenate([p.keys for p in pieces]) if pieces else np.zeros(0, dtype))
    offsets = np.cumsum([0] + [len(p.keys) for p in pieces[:-1]])
  else:
    keys = arena
  starts = np.empty((len(pieces), n_genes + 1), np.int64)
  for row, piece, offset in zip(starts, pieces, offsets):
    np.add(piece.colptr, offset, out=row)
  return keys, starts


def gene_pieces(chunk: sp.csr_matrix, *, group: np.ndarray, key_format: KeyFormat,
                out: np.ndarray | None = None, scaling: tuple | None = None,
                scratch: Scratch | None = None) -> GenePieces:
  """Sort keys of a chunk's values ([rows, genes] float32 CSR), regrouped by gene.

  Stored zeros (and -0.0) get the padding key, so they count as the zeros they are. The keys go
  to `out` (of at least `chunk.nnz` keys of `key_format.dtype`) if given, else to new memory.
  With `scaling` (`ChunkReader.scaling`), the values are counts, keyed as their log1p scale.
  """
  n = chunk.nnz
  keys = np.empty(n, key_format.dtype) if out is None else out[:n]
  colptr = np.empty(chunk.shape[1] + 1, np.int64)

  def regroup(chunk):
    return keys_by_gene.regroup(
        chunk.data[:n], chunk.indices, chunk.indptr, group, base=key_format.base,
        label_bits=key_format.label_bits, n_genes=chunk.shape[1], out=keys, colptr=colptr,
        scaling=scaling, scratch=scratch)

  found = regroup(chunk)
  if found is None:  # a row's columns are out of order
    found = regroup(chunk.sorted_indices())
  _check_key_range(*found, key_format)
  return GenePieces(colptr, keys)


def _check_key_range(low: int, high: int, key_format: KeyFormat) -> None:
  """Raises unless positive values' bits in [low, high] all fit `key_format` (none: low > high)."""
  value_bits = 8 * np.dtype(key_format.dtype).itemsize - key_format.label_bits
  if low <= high and (low < key_format.base or (high - key_format.base) >> value_bits):
    raise ValueError("values outside the range the sort keys were made for")


def _value_keys(values: np.ndarray, *, key_format: KeyFormat, scratch: Scratch,
                out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
  """[n] keys of float32 values with label 0, in `out` or `scratch`, and where the values are
  <= 0 (None if nowhere), for the caller to label, then to pad."""
  dtype, n = key_format.dtype, len(values)
  bits = values.view(np.uint32)
  zeros = np.less_equal(values, 0, out=scratch.array("zeros", n, bool))
  has_zeros = bool(zeros.any())
  positive = bits[~zeros] if has_zeros else bits
  if len(positive):
    _check_key_range(int(positive.min()), int(positive.max()), key_format)
  keys = scratch.array("keys", n, dtype) if out is None else out[:n]
  np.subtract(bits, dtype(key_format.base), out=keys, casting="unsafe")
  np.left_shift(keys, dtype(key_format.label_bits), out=keys)
  return keys, zeros if has_zeros else None


def gene_block_pieces(values: np.ndarray, cells: np.ndarray, colptr: np.ndarray, *, start: int,
                      n_genes: int, group: np.ndarray, key_format: KeyFormat,
                      scratch: Scratch | None = None,
                      out: np.ndarray | None = None) -> GenePieces:
  """Sort keys of a block of genes' values (a CSC's columns [start, start + len(colptr) - 1)).

  Args:
    values: [n] float32 log1p values, gene by gene; cells: [n] the row of each.
    colptr: [block genes + 1] where each gene's values start, from 0.
    start, n_genes: the block's first gene and the genes of the file.
    group: [cells] the group of every cell of the file (none left out).
    key_format, out: as `gene_pieces` takes them; scratch: where the temporaries live.
  """
  scratch = scratch or Scratch()
  n = len(values)
  if out is None:
    out = np.empty(n, key_format.dtype)
  keys, zeros = _value_keys(values, key_format=key_format, scratch=scratch, out=out)
  labels = np.take(group.astype(key_format.dtype, copy=False), cells,
                   out=scratch.array("labels", n, key_format.dtype))
  np.bitwise_or(keys, labels, out=keys)
  if zeros is not None:
    np.putmask(keys, zeros, np.iinfo(key_format.dtype).max)
  stop = start + len(colptr) - 1
  full = np.concatenate([np.zeros(start, np.int64), np.asarray(colptr, np.int64),
                         np.full(n_genes - stop, int(colptr[-1]), np.int64)])
  return GenePieces(full, keys)


def rows_per_chunk(nonzero_per_row: float) -> int:
  """Rows of a chunk that holds about `_VALUES_PER_CHUNK` stored values."""
  return int(np.clip(_VALUES_PER_CHUNK / max(nonzero_per_row, 1.0), 64, 1 << 16))


def gene_batches(starts: np.ndarray) -> Iterator[np.ndarray]:
  """Batches of genes (index arrays) of similar key counts, each within the key budget, from
  the pieces' `starts` ([pieces, genes + 1], as `ranksum_batch.gene_sums` takes them)."""
  counts = (starts[:, 1:] - starts[:, :-1]).sum(0)
  order = np.argsort(counts, kind="stable")
  widths = np.maximum(counts[order], 1)
  start = 0
  while start < len(order):
    # Widths grow along `order`: the most genes whose keys fit the batch budget.
    fits = np.arange(1, len(order) - start + 1) * widths[start:] <= _VALUES_PER_BATCH
    size = max(1, int(fits.sum()))
    yield order[start:start + size]
    start += size
