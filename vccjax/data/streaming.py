"""The model's input expression kept on local disk, for screens whose inputs do not fit in memory.

`StreamedExpression` stands in for the dense `PerturbDataset.hvg_log1p` ([cells, n_in] float32):
indexing it with cell indices (any shape) or a boolean mask reads only those cells' rows, so the
set sampler, control PCA, prediction and the evaluator work on it unchanged. Memory is one step's
cells plus the cached control cells, instead of every cell.

The rows live in a file of their own: `StreamedExpression.write` stores the VCC-scaled input-gene
rows, computed once in the preparation pass that would otherwise densify them in memory, as
dense float32 rows in a temporary file on local disk (`$TMPDIR`; 4 bytes per input gene and
cell: 1.5 GiB for 200,000 cells x 2,000 genes). Values are bit-identical to the dense matrix:
they are the very same float32 rows. The file is unlinked as soon as it is created, so it goes
with the process, even one that crashes.

Why a file of input genes rather than the counts file: a stored counts row holds every gene
(~3,000 scattered values at 5,000 UMI), so each step would read, pick and scale several times
more data than it uses. A row of the file is one contiguous 8 KB read straight into the output
(`os.preadv`; cells adjacent in the file share one call), with no decompression, no gene picking
and no densifying, whatever the counts file's storage. A large request is read by several
threads at once: a disk serves many reads in flight (3x faster cold), and page-cache copies
use every core.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import weakref
from concurrent import futures
from typing import Iterable

import numpy as np

from vccjax.errors import InputError

# Most buffers one `preadv` call takes (POSIX IOV_MAX; Linux allows 1,024).
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)
# Reads in flight at once for a large request (a disk serves many; more barely helps warm reads).
_READ_THREADS = 8


class StreamedExpression:
  """[cells, n_in] float32 rows on local disk, read per request; make one with `write`.

  Args:
    fd: open file descriptor of the rows (C order, float32), from byte 0; closed with this object.
    shape: (cells, n_in).
    cached_cells: [k] sorted unique cells also held in memory.
    cache: [k, n_in] float32 their rows.
  """

  def __init__(self, *, fd: int, shape: tuple[int, int], cached_cells: np.ndarray,
               cache: np.ndarray):
    self._fd = fd
    weakref.finalize(self, os.close, fd)
    self.shape = tuple(shape)
    self.dtype = np.dtype(np.float32)
    self.ndim = 2
    self._row_bytes = self.shape[1] * self.dtype.itemsize
    self._cached, self._cache = cached_cells, cache
    self._pool = None  # reading threads, started by the first large read

  @classmethod
  def write(cls, *, blocks: Iterable[tuple[slice, np.ndarray]], shape: tuple[int, int],
            cached_cells: np.ndarray | None = None,
            directory: str | None = None) -> "StreamedExpression":
    """Writes the rows to a file in `directory` and keeps the rows of `cached_cells` in memory.

    Args:
      blocks: (rows, [len(rows), n_in] float32 values) covering rows 0, 1, ... in order.
      shape: (cells, n_in) of the whole matrix.
      cached_cells: cells kept in memory too (e.g. the controls: half of every training set and
        all of every prediction's inputs).
      directory: where the file goes (local disk, not a RAM-backed tmpfs); default `$TMPDIR`.
    """
    directory = directory or tempfile.gettempdir()
    n_cells, n_in = shape
    n_bytes = n_cells * n_in * 4
    free = shutil.disk_usage(directory).free
    if free < n_bytes:
      raise InputError(f"{directory}", f"{n_bytes / 2**30:.1f} GiB needed for the streamed input "
                       f"genes, {free / 2**30:.1f} GiB free",
                       "point $TMPDIR at a local disk with room, or lower data.n_hvg")
    fd, path = tempfile.mkstemp(prefix="vccjax-inputs-", suffix=".f32", dir=directory)
    os.unlink(path)  # the open descriptor keeps the file until it is closed
    cached = np.unique(np.asarray([] if cached_cells is None else cached_cells, np.int64))
    cache = np.empty((len(cached), n_in), np.float32)
    try:
      with open(fd, "wb", closefd=False) as f:
        at = 0
        for rows, values in blocks:
          if rows.start != at or values.shape != (rows.stop - rows.start, n_in):
            raise ValueError(f"block {rows} of shape {values.shape} does not follow row {at}")
          f.write(np.ascontiguousarray(values, np.float32).data)
          lo, hi = np.searchsorted(cached, [rows.start, rows.stop])
          cache[lo:hi] = values[cached[lo:hi] - rows.start]
          at = rows.stop
      if at != n_cells:
        raise ValueError(f"blocks cover {at} of {n_cells} rows")
    except BaseException:
      os.close(fd)
      raise
    return cls(fd=fd, shape=shape, cached_cells=cached, cache=cache)

  def __len__(self) -> int:
    return self.shape[0]

  @property
  def nbytes_cached(self) -> int:
    return self._cache.nbytes

  def fileno(self) -> int:
    """The rows file's descriptor (e.g. to drop it from the page cache)."""
    return self._fd

  def __getitem__(self, index) -> np.ndarray:
    """Rows `index` (int, slice, int array of any shape [...] or [cells] bool mask) -> [..., n_in]."""
    cells, shape = _cells_of(index, len(self))
    return self.read(cells).reshape(shape + (self.shape[1],))

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    """Every cell, dense (what streaming avoids; for small files and tests)."""
    out = self.read(np.arange(len(self)))
    return out if dtype is None else out.astype(dtype)

  def read(self, cells: np.ndarray) -> np.ndarray:
    """Cells `cells` ([n] int, any order, repeats allowed) -> [n, n_in] float32."""
    cells = np.asarray(cells, dtype=np.int64).ravel()
    out = np.empty((len(cells), self.shape[1]), np.float32)
    if len(self._cached):
      pos = np.minimum(np.searchsorted(self._cached, cells), len(self._cached) - 1)
      hit = self._cached[pos] == cells
      hit_rows = np.flatnonzero(hit)
      # Straight into `out`, a run of output rows at a time (a sampler's controls are one run).
      for run in np.split(hit_rows, np.flatnonzero(np.diff(hit_rows) != 1) + 1):
        if len(run):
          np.take(self._cache, pos[run], axis=0, out=out[run[0]:run[-1] + 1])
      self._read_into(out, rows=np.flatnonzero(~hit), cells=cells[~hit])
    else:
      self._read_into(out, rows=np.arange(len(cells)), cells=cells)
    return out

  def _read_into(self, out: np.ndarray, *, rows: np.ndarray, cells: np.ndarray) -> None:
    """Reads the file rows `cells` into the rows `rows` of `out` ([n, n_in] C-contiguous)."""
    if not len(cells):
      return
    # In file order (disks like it); cells that follow each other in the file are one call.
    order = np.argsort(cells, kind="stable")
    cells, rows = cells[order], rows[order]
    new_call = np.r_[True, np.diff(cells) != 1]
    new_call[::_IOV_MAX] = True  # (a few more calls than needed: at most 1 in _IOV_MAX)
    lo = np.flatnonzero(new_call)
    hi = np.r_[lo[1:], len(cells)]
    size = self._row_bytes
    view = memoryview(out).cast("B")
    buffers = [view[r:r + size] for r in (rows * size).tolist()]
    calls = list(zip(lo.tolist(), hi.tolist(), (cells[lo] * size).tolist(),
                     ((hi - lo) * size).tolist()))
    if len(calls) < 4 * _READ_THREADS:
      self._preadv(buffers, calls)
      return
    # Several threads, each a stretch of the file: a disk serves their reads at once, and a warm
    # page cache copies on several cores (`preadv` releases the GIL).
    parts = [calls[len(calls) * k // _READ_THREADS:len(calls) * (k + 1) // _READ_THREADS]
             for k in range(_READ_THREADS)]
    list(self._threads().map(functools.partial(self._preadv, buffers), parts))

  def _preadv(self, buffers: list, calls: list) -> None:
    for a, b, offset, n_bytes in calls:
      if os.preadv(self._fd, buffers[a:b], offset) != n_bytes:
        raise OSError(f"short read of the streamed input genes at byte {offset}")

  def _threads(self) -> futures.ThreadPoolExecutor:
    if self._pool is None:
      self._pool = futures.ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="vccjax-read")
      weakref.finalize(self, self._pool.shutdown, wait=False)
    return self._pool


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
