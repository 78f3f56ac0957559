"""Row ranges of an `.h5ad` file's CSR-stored `X`, read straight into buffers the caller owns.

anndata's backed slicing builds new arrays for every range it reads. A scorer that streams a
VCC-shape file (4.7e8 stored values) twice in row chunks would allocate ~7 GB of arrays that live
for one chunk each; reading into reused buffers instead touches that memory once, and the first
pass reads only the values (the row totals and the value checks need no column indices).
"""

from __future__ import annotations

import anndata as ad
import numpy as np


def row_ranges(indptr: np.ndarray, values_per_range: int) -> list[tuple[int, int]]:
  """Consecutive (start, stop) row ranges of about `values_per_range` values each.

  Args:
    indptr: [rows + 1] row pointers (values before each row).
    values_per_range: the budget; a range holds at least one row.
  """
  ranges, start, n_rows = [], 0, len(indptr) - 1
  while start < n_rows:
    # The last row whose end stays within the budget, and at least one row.
    stop = int(np.searchsorted(indptr, indptr[start] + values_per_range, "right")) - 1
    stop = min(max(stop, start + 1), n_rows)
    ranges.append((start, stop))
    start = stop
  return ranges


class CsrRows:
  """Direct reads of row ranges of a backed AnnData's CSR `X` (h5py serialises the reads)."""

  def __init__(self, group):
    self.shape = tuple(int(n) for n in group.attrs["shape"])
    self.indptr = group["indptr"][:].astype(np.int64)
    self._data = group["data"]
    self.value_dtype = self._data.dtype
    self._indices = group["indices"]

  @classmethod
  def of(cls, adata: ad.AnnData) -> "CsrRows | None":
    """The reader of a backed AnnData whose `X` is CSR on disk; None for anything else."""
    x = adata.X
    if getattr(x, "format", None) != "csr" or not hasattr(x, "group"):
      return None
    return cls(x.group)

  def row_ranges(self, values_per_range: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) row ranges of about `values_per_range` stored values each."""
    return row_ranges(self.indptr, values_per_range)

  def read(self, start: int, stop: int, *, data: np.ndarray,
           indices: np.ndarray | None = None, block: np.ndarray | None = None) -> np.ndarray:
    """Reads rows [start, stop) into the first values of `data` (and `indices`).

    Args:
      start, stop: the rows.
      data: buffer of at least the rows' stored values, of the dtype wanted (HDF5 converts).
      indices: int32 or int64 buffer for their column indices, or None to skip them.
      block: unused (`dense_rows.DenseRows.read` reads through it).

    Returns:
      [stop - start + 1] the rows' indptr, from 0, of `indices`' dtype (int64 without it).
    """
    lo, hi = int(self.indptr[start]), int(self.indptr[stop])
    if hi > lo:
      self._data.read_direct(data, np.s_[lo:hi], np.s_[0:hi - lo])
      if indices is not None:
        self._indices.read_direct(indices, np.s_[lo:hi], np.s_[0:hi - lo])
    local = self.indptr[start:stop + 1] - lo
    return local.astype(indices.dtype) if indices is not None else local
