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

  def array(self, name: str, size: int, dtype) -> np.ndarray:
    """A [size] array of `dtype` (contents undefined), a view of buffer `name`."""
    dtype = np.dtype(dtype)
    buffer = self._buffers.get(name)
    if buffer is None or buffer.dtype != dtype or len(buffer) < size:
      # Grow by a quarter more than asked, so a slightly larger next chunk does not reallocate.
      buffer = self._buffers[name] = np.empty(max(size + size // 4, 1), dtype)
    return buffer[:size]
