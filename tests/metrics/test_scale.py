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


@pytest.mark.parametrize("slices", [1, 10**9])  # row-by-row slices, or one per-value array
@pytest.mark.parametrize("sparse", [True, False])
def test_counts_are_scaled_bit_identically_to_scanpy(sparse, slices, monkeypatch):
  from vccjax.data import normalize
  monkeypatch.setattr(normalize, "_VALUES_PER_SLICE", slices)
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_inspect_values_over_many_windows(dtype):
  """What the scan reports must not depend on which window a value falls in."""
  from vccjax.metrics import scale
  size = 3 * scale._VALUES_PER_CHECK + 5
  values = np.zeros(size, dtype)
  values[-2] = 7  # the largest and the smallest positive value, in the last (short) window
  assert scale.inspect_values(values) == (True, 0.0, 7.0, False, 7.0)
  values[scale._VALUES_PER_CHECK + 1] = -3
  assert scale.inspect_values(values) == (True, -3.0, 7.0, False, 7.0)
  if dtype is not np.int64:
    fractional = values.copy()
    fractional[2 * scale._VALUES_PER_CHECK] = 2.5
    assert scale.inspect_values(fractional) == (True, -3.0, 7.0, True, 2.5)
    for bad in (np.nan, np.inf, -np.inf):
      broken = values.copy()
      broken[-1] = bad
      assert not scale.inspect_values(broken)[0]
