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
def test_inspect_values_facts(dtype):
  """The scan's facts are NumPy's: min and max with zeros, modf's fraction, smallest positive."""
  from vccjax.metrics import scale
  values = np.zeros(1000, dtype)
  values[-2] = 7
  assert scale.inspect_values(values) == (True, 0.0, 7.0, False, 7.0)
  values[401] = -3
  assert scale.inspect_values(values) == (True, -3.0, 7.0, False, 7.0)
  if dtype is not np.int64:
    fractional = values.copy()
    fractional[700] = 2.5
    assert scale.inspect_values(fractional) == (True, -3.0, 7.0, True, 2.5)
    # A fraction of exactly 1e-3 in the values' dtype is not above cell-eval's 1e-3 (NumPy
    # compares a float32 array with 1e-3 in float32); negative fractions never are.
    edge = values.copy()
    edge[5], edge[6] = dtype(1e-3), dtype(-2.5)
    frac, _ = np.modf(edge)
    assert scale.inspect_values(edge)[3] == bool((frac > 1e-3).any()) == False  # noqa: E712
    for bad in (np.nan, np.inf, -np.inf):
      broken = values.copy()
      broken[-1] = bad
      assert not scale.inspect_values(broken)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_row_totals_equal_numpy_for_counts(dtype):
  from vccjax.data import normalize
  from vccjax.metrics import value_scan
  rng = np.random.default_rng(0)
  per_row = rng.integers(0, 30, 40)
  per_row[[0, 9, 39]] = 0
  indptr = np.r_[0, np.cumsum(per_row)]
  values = rng.poisson(3.0, indptr[-1]).astype(dtype) * rng.choice([1, 1000], indptr[-1])
  totals, nonzero = value_scan.row_totals(values, indptr)
  np.testing.assert_array_equal(totals, normalize.row_totals(values, indptr))
  np.testing.assert_array_equal(
      nonzero, [np.count_nonzero(values[a:b]) for a, b in zip(indptr, indptr[1:])])
  assert value_scan.scan_values(values, fraction_epsilon=1e-3)[5]
  assert not value_scan.scan_values(values + dtype(0.5), fraction_epsilon=1e-3)[5]
