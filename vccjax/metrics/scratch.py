"""Work buffers that one thread reuses from one row chunk to the next.

A chunk of a VCC-shape file holds ~16M values; temporaries of that size that are allocated and
freed per chunk are handed back to the OS and come back as new pages, which the kernel must zero
(and a VM must first map): that was a sixth of the scorer's CPU time. A `Scratch` keeps one
buffer per name, grown when a chunk needs more, so the pages are touched once per thread.
"""

from __future__ import annotations

import numpy as np


class Scratch:
  """Named, growable work buffers for one thread (not thread-safe: one per worker)."""

  def __init__(self):
    self._buffers: dict[str, np.ndarray] = {}
    self._rows_of: tuple[np.ndarray, np.ndarray] | None = None

  def array(self, name: str, size: int, dtype) -> np.ndarray:
    """A [size] array of `dtype` (contents undefined), a view of buffer `name`."""
    dtype = np.dtype(dtype)
    buffer = self._buffers.get(name)
    if buffer is None or buffer.dtype != dtype or len(buffer) < size:
      # Grow by a quarter more than asked, so a slightly larger next chunk does not reallocate.
      buffer = self._buffers[name] = np.empty(max(size + size // 4, 1), dtype)
    return buffer[:size]

  def row_of_value(self, indptr: np.ndarray) -> np.ndarray:
    """[indptr[-1]] intp: the row of each stored value of a CSR chunk with this `indptr`.

    `np.repeat(np.arange(rows), np.diff(indptr))` without allocating; the last answer is kept,
    so the scaling and the sort keys of one chunk share it. (intp: `np.take` would copy any
    other index type to it.)
    """
    if self._rows_of is not None and self._rows_of[0] is indptr:
      return self._rows_of[1]
    n = int(indptr[-1])
    rows = self.array("row_of_value", n, np.intp)
    rows[:] = 0
    starts = np.asarray(indptr[1:-1])
    np.add.at(rows, starts[starts < n], 1)  # empty rows: several rows start at one value
    np.cumsum(rows, out=rows)
    self._rows_of = (indptr, rows)
    return rows
