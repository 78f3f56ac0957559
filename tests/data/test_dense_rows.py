"""Direct row-range reads of a dense-stored h5ad X: every value, or the CSR of its nonzero ones."""

import anndata as ad
import numpy as np
import scipy.sparse as sp

from vccjax.data import dense_rows, io


def test_nonzero_reads_are_the_csr_of_the_rows(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.poisson(0.8, (17, 11)).astype(np.float32)
  x[[0, 8, 16]] = 0  # empty rows first, inside and last
  x[3, 4] = -0.0  # a negative zero is a zero
  path = tmp_path / "x.h5ad"
  ad.AnnData(X=x).write_h5ad(path)
  rows = dense_rows.DenseRows.of(io.read_h5ad(str(path), backed=True))
  for start, stop in [(0, 17), (0, 1), (5, 9), (16, 17)]:
    expected = sp.csr_matrix(x[start:stop])
    n = expected.nnz
    data, indices = np.empty(n, np.float32), np.empty(n, np.int32)
    block = np.empty((stop - start) * 11, np.float32)
    indptr = rows.read(start, stop, data=data, indices=indices, block=block)
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(indices, expected.indices)
    np.testing.assert_array_equal(data, expected.data)
    every = np.empty((stop - start) * 11, np.float32)
    rows.read(start, stop, data=every)
    np.testing.assert_array_equal(every.reshape(stop - start, 11), x[start:stop])
