"""Column ranges of an `.h5ad` file's CSC-stored `X`, read straight into buffers the caller owns.

A CSC file holds each gene's values together, which is the order the ranking wants (one sort per
gene): so it is read by blocks of genes, never converted to rows and never densified. The reads
mirror `csr_rows.CsrRows`'s, with genes for rows.
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from vccjax.data import csr_rows


class CscColumns:
  """Direct reads of column ranges of a backed AnnData's CSC `X` (h5py serialises the reads)."""

  def __init__(self, group):
    self.shape = tuple(int(n) for n in group.attrs["shape"])
    self.colptr = group["indptr"][:].astype(np.int64)
    self._data = group["data"]
    self._indices = group["indices"]
    self.value_dtype = self._data.dtype

  @classmethod
  def of(cls, adata: ad.AnnData) -> "CscColumns | None":
    """The reader of a backed AnnData whose `X` is CSC on disk; None for anything else."""
    x = adata.X
    if getattr(x, "format", None) != "csc" or not hasattr(x, "group"):
      return None
    return cls(x.group)

  def column_ranges(self, values_per_range: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) column ranges of about `values_per_range` stored values each."""
    return csr_rows.row_ranges(self.colptr, values_per_range)

  def read(self, start: int, stop: int, *, data: np.ndarray,
           indices: np.ndarray | None = None) -> np.ndarray:
    """Reads columns [start, stop) into the first values of `data` (and their rows `indices`).

    Returns:
      [stop - start + 1] the columns' pointers, from 0 (int64).
    """
    lo, hi = int(self.colptr[start]), int(self.colptr[stop])
    if hi > lo:
      self._data.read_direct(data, np.s_[lo:hi], np.s_[0:hi - lo])
      if indices is not None:
        self._indices.read_direct(indices, np.s_[lo:hi], np.s_[0:hi - lo])
    return self.colptr[start:stop + 1] - lo
