"""Reading rows of `X`: backed CSR files read directly, in any order, equal to anndata's."""

import anndata as ad
import numpy as np
import scipy.sparse as sp

from vccjax.data import io


def test_read_rows_backed_or_in_memory_equal_the_matrix_rows(tmp_path):
  rng = np.random.default_rng(0)
  x = sp.random(60, 25, density=0.3, format="csr", random_state=1, dtype=np.float32)
  x.data = np.ceil(x.data * 9)
  x = sp.csr_matrix(x.toarray() * (np.arange(60) != 7)[:, None])  # an empty row inside a run
  path = tmp_path / "x.h5ad"
  ad.AnnData(X=x).write_h5ad(path)
  for adata in (io.read_h5ad(str(path), backed=True), io.read_h5ad(str(path))):
    _check_rows(adata, x, rng)


def _check_rows(backed, x, rng):
  for rows in ([3], [5, 6, 7, 8, 9], [59, 0, 7, 7, 30, 31, 2], rng.integers(0, 60, 200)):
    got = io.read_rows(backed, np.array(rows))
    assert sp.isspmatrix_csr(got) and got.dtype == np.float32
    np.testing.assert_array_equal(got.toarray(), x[np.array(rows)].toarray())
    dense = io.read_dense_rows(backed, np.array(rows))
    assert dense.dtype == np.float64
    np.testing.assert_array_equal(dense, x[np.array(rows)].toarray())
  assert io.read_rows(backed, np.array([], np.int64)).shape == (0, 25)
  assert io.read_dense_rows(backed, np.array([], np.int64)).shape == (0, 25)
