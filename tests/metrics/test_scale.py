"""The file scaling against scanpy's normalize_total + log1p (what cell-eval runs)."""

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

from vccjax import metrics
from vccjax.errors import InputError


def _counts(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.poisson(rng.gamma(0.5, 4.0, 30), (50, 30)).astype(np.float32)
  x[7] = 0  # an empty cell: scanpy's CSR and dense medians differ on it
  return x


@pytest.mark.parametrize("sparse", [True, False])
def test_counts_are_scaled_bit_identically_to_scanpy(sparse):
  x = _counts()
  ref = ad.AnnData(X=sp.csr_matrix(x) if sparse else x.copy())
  sc.pp.normalize_total(ref)
  sc.pp.log1p(ref)
  ours = metrics.to_vcc_log1p(sp.csr_matrix(x) if sparse else x)
  ours = ours.toarray() if sparse else ours
  expected = ref.X.toarray() if sparse else ref.X
  assert ours.dtype == np.float32
  np.testing.assert_array_equal(ours, expected)


def test_in_place_scaling_overwrites_and_copy_does_not():
  x = sp.csr_matrix(_counts(1))
  before = x.copy()
  copy = metrics.to_vcc_log1p(x)
  assert (x != before).nnz == 0
  metrics.to_vcc_log1p(x, in_place=True)
  np.testing.assert_array_equal(x.toarray(), copy.toarray())


def test_log1p_input_is_kept_and_bad_scales_are_rejected():
  x = np.log1p(_counts(2) / 3.0).astype(np.float32)
  np.testing.assert_array_equal(metrics.to_vcc_log1p(x), x)
  assert not metrics.is_counts(x)
  for bad in (x - 1.0, x + 20.0, np.where(x > 1, np.nan, x)):
    with pytest.raises(InputError):
      metrics.to_vcc_log1p(bad, where="pred.h5ad")
  with pytest.raises(InputError, match="negative"):
    metrics.to_vcc_log1p(-_counts(3))
