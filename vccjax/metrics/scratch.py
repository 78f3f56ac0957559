"""Work buffers that threads reuse from one row chunk, and one file, to the next.

A chunk of a VCC-shape file holds ~16M values; temporaries of that size that are allocated and
freed per chunk are handed back to the OS and come back as new pages, which the kernel must zero
(and a VM must first map): that was a sixth of the scorer's CPU time. A `Scratch` keeps one
buffer per name, grown when a chunk needs more, so the pages are touched once per thread. A
`ScratchPool` lends Scratches to the worker threads of successive jobs (the scorer's two files
run one after the other, each on its own thread pool), and holds the one file-sized buffer a
job needs (the sort keys), so the second file reuses the first one's pages. `in_order` runs
those jobs' pieces on a thread pool with a bounded number read ahead.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Callable, Iterable, Iterator

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
      self._buffers.pop(name, None)  # freed before its successor is allocated
      # Grow by a quarter more than asked, so a slightly larger next chunk does not reallocate.
      buffer = self._buffers[name] = np.empty(max(size + size // 4, 1), dtype)
    return buffer[:size]


class ScratchPool:
  """Scratches lent to worker threads, one at a time each, plus one shared Scratch.

  Thread-safe. `shared` is for buffers that one job uses as a whole (not per thread): the job
  must not run beside another job of the same pool.
  """

  def __init__(self):
    self._free: list[Scratch] = []
    self._lock = threading.Lock()
    self.shared = Scratch()

  @contextlib.contextmanager
  def lease(self) -> Iterator[Scratch]:
    """A Scratch no other thread holds until this one gives it back."""
    with self._lock:
      scratch = self._free.pop() if self._free else Scratch()
    try:
      yield scratch
    finally:
      with self._lock:
        self._free.append(scratch)


def in_order(pool, work: Callable, items: Iterable[tuple], *, ahead: int) -> Iterator:
  """`work(*item)` of every item on `pool`, the results yielded in the items' order.

  At most `ahead` + 1 items are submitted but not yet yielded, which bounds the memory of pieces
  read but not yet used; `items` is consumed as the work goes (a generator may prepare each).
  """
  pending = collections.deque()
  for item in items:
    pending.append(pool.submit(work, *item))
    if len(pending) > ahead:
      yield pending.popleft().result()
  while pending:
    yield pending.popleft().result()
