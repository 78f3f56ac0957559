"""Row ranges of an `.h5ad` file's dense `X`, read straight into buffers the caller owns.

The dense counterpart of `csr_rows.CsrRows`, with the same two reads: `read(..., indices=None)`
gives every value of the rows (a value pass needs the zeros too: they count in the minimum and in
the fraction test); with `indices` it keeps only the nonzero values and their columns, a CSR of
the rows (one compiled pass drops the zeros: ~5x less CPU than NumPy's mask, positions, take and
remainder), so a dense file ranks exactly as its CSR copy.
HDF5 converts the stored dtype (int, float64) to the buffer's and reads contiguous or chunked
datasets alike.
"""

from __future__ import annotations

import anndata as ad
import numba
import numpy as np

from vccjax.data import csr_rows


class DenseRows:
  """Direct reads of row ranges of a backed AnnData's dense `X` (h5py serialises the reads)."""

  def __init__(self, dataset):
    self.shape = tuple(int(n) for n in dataset.shape)
    self._dataset = dataset
    self.value_dtype = dataset.dtype
    # Every value of a dense row is stored: the row pointers of its CSR with zeros kept.
    self.indptr = np.arange(self.shape[0] + 1, dtype=np.int64) * self.shape[1]

  @classmethod
  def of(cls, adata: ad.AnnData) -> "DenseRows | None":
    """The reader of a backed AnnData whose `X` is a dense HDF5 dataset; None for anything else."""
    x = adata.X
    if not adata.isbacked or getattr(x, "ndim", None) != 2 or not hasattr(x, "read_direct"):
      return None
    return cls(x)

  def row_ranges(self, values_per_range: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) row ranges of about `values_per_range` values each."""
    return csr_rows.row_ranges(self.indptr, values_per_range)

  def read(self, start: int, stop: int, *, data: np.ndarray, indices: np.ndarray | None = None,
           block: np.ndarray | None = None) -> np.ndarray:
    """Reads rows [start, stop): every value into `data`, or (with `indices`) the nonzero ones.

    Args:
      start, stop: the rows.
      data: buffer of at least (stop - start) x genes values, of the dtype wanted.
      indices: int32 or int64 buffer of as many column indices, or None to keep every value.
      block: with `indices`, a buffer of (stop - start) x genes values of `data`'s dtype that
        the rows are read into first (the nonzero values are then copied out to `data`).

    Returns:
      [stop - start + 1] row pointers, from 0, of `indices`' dtype (int64 without it).
    """
    n_rows, n_genes = stop - start, self.shape[1]
    if indices is None:
      target = data[:n_rows * n_genes].reshape(n_rows, n_genes)
      if n_rows:
        self._dataset.read_direct(target, np.s_[start:stop], np.s_[0:n_rows])
      return self.indptr[:n_rows + 1].copy()
    target = block[:n_rows * n_genes].reshape(n_rows, n_genes)
    if n_rows:
      self._dataset.read_direct(target, np.s_[start:stop], np.s_[0:n_rows])
    indptr = np.zeros(n_rows + 1, indices.dtype)
    _drop_zeros(target.reshape(-1), n_genes, data, indices, indptr)
    return indptr


@numba.njit(nogil=True, cache=True)
def _drop_zeros(block, n_genes, data, indices, indptr):  # pragma: no cover (compiled)
  """The nonzero values of [rows, genes] `block` (flat) and their genes, to `data` and `indices`
  (room for exactly as many), and the rows' pointers to `indptr`, in one pass. Branch-free: every
  value is written at the next free place and the place advances past a nonzero one only (a
  dense file's zeros and nonzeros alternate unpredictably)."""
  k = 0
  room = len(data)
  for r in range(len(indptr) - 1):
    for g in range(n_genes):
      value = block[r * n_genes + g]
      if k < room:
        data[k] = value
        indices[k] = g
      k += value != 0
    indptr[r + 1] = k
