"""The streamed .h5ad writer: dense chunks become the same CSR as SciPy's conversion."""

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vccjax.data import writer


def test_dense_to_csr_equals_scipy():
  rng = np.random.default_rng(0)
  x = (rng.random((37, 53)) < 0.4) * rng.gamma(1.0, 2.0, (37, 53))
  x[5] = 0.0  # an empty row
  got, ref = writer.dense_to_csr(x), sp.csr_matrix(x, dtype=np.float32)
  for name in ("data", "indices", "indptr"):
    np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
  assert got.dtype == np.float32 and got.has_sorted_indices


def test_dense_chunks_are_written_as_csr(tmp_path):
  x = np.arange(12, dtype=np.float32).reshape(4, 3) % 5
  with writer.H5adWriter(tmp_path / "f.h5ad", var=pd.DataFrame(index=["a", "b", "c"])) as w:
    w.append(x[:3], pd.DataFrame({"target_gene": ["A"] * 3}, index=["c0", "c1", "c2"]))
    w.append(x[3:], pd.DataFrame({"target_gene": ["B"]}, index=["c3"]))
  back = ad.read_h5ad(tmp_path / "f.h5ad")
  assert sp.issparse(back.X)
  np.testing.assert_array_equal(back.X.toarray(), x)
