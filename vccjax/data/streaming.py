"""The model's input expression read from the counts file on demand, for files larger than memory.

`StreamedExpression` stands in for the dense `PerturbDataset.hvg_log1p` ([cells, n_in] float32):
indexing it with cell indices (any shape) or a boolean mask reads those cells' raw counts from
`X` (backed, on disk), applies the VCC scaling with the cells' known totals and keeps the input
genes, so the set sampler, control PCA, prediction and the evaluator work on it unchanged. Memory
is one step's cells plus the cached control cells, instead of every cell.

Values are bit-identical to the dense matrix: the same float32 operations in the same order
(`normalize.log1p_normalize` on the input-gene columns, each cell divided by its total's factor).

Speed: a training step reads ~1,000 scattered cells. Through h5py each cell costs two slice reads
of ~50 us plus copies; when `X` is a CSR stored without compression (what `anndata` and
`vccjax.data.writer` write by default), the cells' byte ranges are instead read straight from the
file with one `preadv` per stored chunk they touch (`_StoredCsr`), several times faster. Compressed
files go through `io.read_rows` (correct, slower: every cell decompresses whole chunks).
"""

from __future__ import annotations

import os
import weakref

import numpy as np
import scipy.sparse as sp

from vccjax.data import io
from vccjax.data import normalize


class StreamedExpression:
  """[cells, n_in] float32 VCC-scaled log1p expression of the genes `genes`, read per request.

  Args:
    adata: AnnData of raw counts (X backed or in memory).
    genes: [n_in] sorted column indices of the input genes.
    totals: [cells] each cell's total count over all genes (the scaling uses these).
    target_sum: the file's median total (VCC scaling).
    cached_cells: cells kept dense in memory (e.g. the controls: half of every training set and
      all of every prediction's inputs), read once here.
    block_rows: cells per read when filling the cache or densifying (bounds memory).
  """

  def __init__(self, *, adata, genes: np.ndarray, totals: np.ndarray, target_sum: float,
               cached_cells: np.ndarray | None = None, block_rows: int = 4096):
    self._adata, self._totals, self._target_sum = adata, totals, target_sum
    self._genes = np.asarray(genes, dtype=np.int64)
    # Position of each gene among the input genes, -1 for the others: selects columns in one pass.
    self._column = np.full(adata.n_vars, -1, np.int32)
    self._column[self._genes] = np.arange(len(self._genes), dtype=np.int32)
    self._is_input = self._column >= 0
    self._block_rows = block_rows
    self._stored = _StoredCsr.of(adata)
    self.shape = (adata.n_obs, len(self._genes))
    self.dtype = np.dtype(np.float32)
    self.ndim = 2
    self._cached = np.unique(np.asarray(
        [] if cached_cells is None else cached_cells, dtype=np.int64))
    self._cache = self._read_blocks(self._cached)

  def __len__(self) -> int:
    return self.shape[0]

  @property
  def nbytes_cached(self) -> int:
    return self._cache.nbytes

  def __getitem__(self, index) -> np.ndarray:
    """Rows `index` (int, slice, int array of any shape [...] or [cells] bool mask) -> [..., n_in]."""
    cells, shape = _cells_of(index, len(self))
    return self.read(cells).reshape(shape + (self.shape[1],))

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    """Every cell, dense (what streaming avoids; for small files and tests)."""
    out = self._read_blocks(np.arange(len(self)))
    return out if dtype is None else out.astype(dtype)

  def read(self, cells: np.ndarray) -> np.ndarray:
    """Cells `cells` ([n] int, any order, repeats allowed) -> [n, n_in] float32."""
    cells = np.asarray(cells, dtype=np.int64).ravel()
    out = np.empty((len(cells), self.shape[1]), np.float32)
    pos = np.minimum(np.searchsorted(self._cached, cells), max(len(self._cached) - 1, 0))
    hit = self._cached[pos] == cells if len(self._cached) else np.zeros(len(cells), bool)
    out[hit] = self._cache[pos[hit]]
    # One read in increasing order of the other cells, each once (h5py needs it; disks like it).
    uniq, inverse = np.unique(cells[~hit], return_inverse=True)
    out[~hit] = self._read_sorted(uniq)[inverse.ravel()]
    return out

  def _read_blocks(self, cells: np.ndarray) -> np.ndarray:
    out = np.empty((len(cells), self.shape[1]), np.float32)
    for start in range(0, len(cells), self._block_rows):
      block = cells[start:start + self._block_rows]
      out[start:start + len(block)] = self._read_sorted(block)
    return out

  def _read_sorted(self, cells: np.ndarray) -> np.ndarray:
    """Unique increasing `cells` -> [n, n_in] float32, scaled as `dataset._hvg_matrix` does."""
    if not len(cells):
      return np.zeros((0, self.shape[1]), np.float32)
    if self._stored is not None:
      data, indices, indptr = self._stored.read(cells)
    else:
      counts = io.read_rows(self._adata, cells)
      data, indices, indptr = counts.data, counts.indices, counts.indptr
    expr = normalize.log1p_normalize(self._input_genes(data, indices, indptr),
                                     target_sum=self._target_sum, totals=self._totals[cells])
    return expr.toarray()

  def _input_genes(self, data, indices, indptr) -> sp.csr_matrix:
    """The input-gene columns of CSR rows, as float32 CSR (`csr[:, genes]`, in one pass)."""
    kept = np.flatnonzero(np.take(self._is_input, indices))
    # A row's kept entries start where the kept positions pass the row's first entry.
    return sp.csr_matrix((data[kept].astype(np.float32, copy=False),
                          np.take(self._column, indices[kept]), np.searchsorted(kept, indptr)),
                         shape=(len(indptr) - 1, self.shape[1]))


def _cells_of(index, n_cells: int) -> tuple[np.ndarray, tuple]:
  """(flat cell indices, leading output shape) of a NumPy-style row index."""
  if isinstance(index, tuple):
    if len(index) != 1:
      raise IndexError("a streamed matrix is indexed by cells only (take genes from the result)")
    index = index[0]
  if isinstance(index, slice):
    return np.arange(n_cells)[index], (len(range(*index.indices(n_cells))),)
  index = np.asarray(index)
  if index.dtype == bool:
    if index.shape != (n_cells,):
      raise IndexError(f"boolean mask of shape {index.shape} for {n_cells} cells")
    cells = np.flatnonzero(index)
    return cells, (len(cells),)
  if not np.issubdtype(index.dtype, np.integer):
    raise IndexError(f"cells must be integers or a boolean mask, not {index.dtype}")
  cells = np.where(index < 0, index + n_cells, index).astype(np.int64)
  if cells.size and (cells.min() < 0 or cells.max() >= n_cells):
    raise IndexError(f"cell index out of range for {n_cells} cells")
  return cells.ravel(), index.shape


class _StoredCsr:
  """Rows of a backed CSR `X` read straight from the file: its uncompressed HDF5 storage.

  Use `_StoredCsr.of(adata)`, which returns None when `X` is not stored that way.
  """

  def __init__(self, *, path: str, indptr: np.ndarray, data: "_Storage", indices: "_Storage"):
    self._indptr, self._data, self._indices = indptr, data, indices
    self._fd = os.open(path, os.O_RDONLY)
    weakref.finalize(self, os.close, self._fd)

  @classmethod
  def of(cls, adata) -> "_StoredCsr | None":
    group = getattr(adata.X, "group", None)
    if group is None or getattr(adata.X, "format", None) != "csr" or not adata.filename:
      return None
    data, indices = _Storage.of(group["data"]), _Storage.of(group["indices"])
    if data is None or indices is None:
      return None
    return cls(path=os.fspath(adata.filename), indptr=group["indptr"][:].astype(np.int64),
               data=data, indices=indices)

  def read(self, cells: np.ndarray):
    """Unique increasing `cells` -> (data, indices, indptr) of their CSR rows."""
    starts, stops = self._indptr[cells], self._indptr[cells + 1]
    indptr = np.concatenate([[0], np.cumsum(stops - starts)])
    return (self._data.read(self._fd, starts, stops), self._indices.read(self._fd, starts, stops),
            indptr)


class _Storage:
  """Where the elements of a 1-D HDF5 dataset lie in its file (contiguous or unfiltered chunks).

  Args:
    dtype: the elements' (little-endian or native) dtype.
    chunk: elements per stored chunk (the whole dataset when contiguous).
    offsets: [chunks] byte offset of each chunk in the file, in element order.
  """

  def __init__(self, *, dtype: np.dtype, chunk: int, offsets: np.ndarray):
    self.dtype, self.chunk, self.offsets = dtype, chunk, offsets

  @classmethod
  def of(cls, dset) -> "_Storage | None":
    """The storage of `dset`, or None if it is filtered (compressed), foreign-endian or sparse."""
    dtype = dset.dtype
    if dtype.byteorder not in "=|<" or dset.ndim != 1 or not len(dset):
      return None
    if dset.chunks is None:
      offset = dset.id.get_offset()
      return None if offset is None else cls(dtype=dtype, chunk=len(dset),
                                             offsets=np.array([offset], np.int64))
    if dset.compression or dset.shuffle or dset.fletcher32 or dset.scaleoffset:
      return None
    found = {}
    try:
      dset.id.chunk_iter(lambda info: found.__setitem__(info.chunk_offset[0],
                                                        (info.byte_offset, info.filter_mask)))
    except Exception:  # e.g. HDF5 < 1.12.3 (no chunk iteration): read through h5py instead
      return None
    chunk = dset.chunks[0]
    n_chunks = -(-len(dset) // chunk)
    if len(found) != n_chunks or any(mask for _, mask in found.values()):
      return None
    offsets = np.array([found[k * chunk][0] for k in range(n_chunks)], np.int64)
    return cls(dtype=dtype, chunk=chunk, offsets=offsets)

  def read(self, fd: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Elements [starts[i], stops[i]) of every range i, concatenated: [sum of lengths]."""
    out = np.empty(int((stops - starts).sum()), self.dtype)
    view = memoryview(out).cast("B")
    at = 0
    for offset, n_bytes in zip(*self._file_runs(starts, stops)):
      if os.preadv(fd, [view[at:at + n_bytes]], offset) != n_bytes:
        raise OSError(f"short read at byte {offset} of the counts file (truncated?)")
      at += n_bytes
    return out

  def _file_runs(self, starts: np.ndarray, stops: np.ndarray) -> tuple[list, list]:
    """(byte offset, byte count) of each contiguous run of the file holding the ranges, in order."""
    keep = stops > starts
    starts, stops = starts[keep], stops[keep]
    if not len(starts):
      return [], []
    # Split the ranges where they cross a chunk boundary: each piece lies in one chunk.
    first, last = starts // self.chunk, (stops - 1) // self.chunk
    n_pieces = last - first + 1
    owner = np.repeat(np.arange(len(starts)), n_pieces)
    chunk = first[owner] + np.arange(n_pieces.sum()) - np.repeat(np.cumsum(n_pieces) - n_pieces,
                                                                  n_pieces)
    lo = np.maximum(starts[owner], chunk * self.chunk)
    hi = np.minimum(stops[owner], (chunk + 1) * self.chunk)
    size = self.dtype.itemsize
    offset = self.offsets[chunk] + (lo - chunk * self.chunk) * size
    n_bytes = (hi - lo) * size
    # Pieces that follow each other in the file (a cell across two chunks written together) are
    # one read: about half the system calls.
    run_start = np.flatnonzero(np.r_[True, offset[1:] != offset[:-1] + n_bytes[:-1]])
    return offset[run_start].tolist(), np.add.reduceat(n_bytes, run_start).tolist()
