"""Direct row-range reads of a CSR-stored h5ad X against anndata's own reading."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from vccjax.data import csr_rows, io, normalize


@pytest.fixture
def stored(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.poisson(0.7, (23, 9)).astype(np.float32)
  x[[0, 10, 11, 22]] = 0  # empty rows first, inside and last
  path = tmp_path / "x.h5ad"
  ad.AnnData(X=sp.csr_matrix(x)).write_h5ad(path)
  return x, io.read_h5ad(str(path), backed=True)


@pytest.mark.parametrize("budget", [1, 5, 17, 1000])
def test_ranges_cover_the_rows_and_reads_match(stored, budget):
  x, adata = stored
  rows = csr_rows.CsrRows.of(adata)
  ranges = rows.row_ranges(budget)
  assert ranges[0][0] == 0 and ranges[-1][1] == len(x)
  assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(ranges, ranges[1:]))
  data = np.full(200, np.nan, np.float32)
  indices = np.zeros(200, np.int32)
  for start, stop in ranges:
    indptr = rows.read(start, stop, data=data, indices=indices)
    assert indptr.dtype == np.int32
    got = sp.csr_matrix((data[:indptr[-1]], indices[:indptr[-1]], indptr), shape=(stop - start, 9))
    np.testing.assert_array_equal(got.toarray(), x[start:stop])
    np.testing.assert_array_equal(normalize.row_totals(data, indptr), x[start:stop].sum(1))


def test_dense_and_in_memory_x_have_no_reader(tmp_path):
  path = tmp_path / "dense.h5ad"
  ad.AnnData(X=np.ones((3, 2), np.float32)).write_h5ad(path)
  assert csr_rows.CsrRows.of(io.read_h5ad(str(path), backed=True)) is None
  assert csr_rows.CsrRows.of(io.read_h5ad(str(path))) is None
