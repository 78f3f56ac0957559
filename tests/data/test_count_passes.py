"""The compiled passes over the counts equal NumPy/SciPy references, in every range size."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from vccjax.data import count_passes, dataset, normalize


def _counts(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.poisson(rng.gamma(0.4, 4.0, 60), (50, 60)).astype(np.float32)
  x[3, 5], x[7, 9], x[8, 1] = 300, 70_000, 2.5  # beyond the tables, and not an integer
  return sp.csr_matrix(x)


@pytest.mark.parametrize("values_per_range", [1, 97, 10**6])
@pytest.mark.parametrize("backed", [False, True])
def test_passes_equal_the_dense_references(tmp_path, values_per_range, backed):
  x = _counts()
  path = tmp_path / "x.h5ad"
  ad.AnnData(X=x).write_h5ad(path)
  adata = ad.read_h5ad(path, backed="r" if backed else None)
  totals = dataset._totals_pass(adata, values_per_range)
  np.testing.assert_array_equal(totals, np.asarray(x.sum(1), np.float64).ravel())
  target_sum = normalize.median_target_sum(totals)
  log1p = normalize.log1p_normalize(x, target_sum=target_sum, totals=totals)
  group = np.arange(50) % 4
  moments, log1p_sums, count_sums = dataset._group_pass(adata, group, 4, totals, target_sum,
                                                        values_per_range)
  dense = log1p.toarray().astype(np.float64)
  onehot = np.eye(4)[group].T
  np.testing.assert_allclose(log1p_sums, onehot @ dense, rtol=1e-12)
  np.testing.assert_allclose(count_sums, onehot @ np.expm1(log1p.toarray()).astype(np.float64),
                             rtol=1e-12)
  np.testing.assert_allclose(moments.mean, dense.mean(0), rtol=1e-12)
  np.testing.assert_allclose(moments.var, dense.var(0), rtol=1e-9, atol=1e-12)
  hvg = np.array([1, 5, 9, 40])
  blocks = list(dataset._hvg_blocks(adata, hvg, totals, target_sum, values_per_range))
  assert [b[0].start for b in blocks] == sorted({b[0].start for b in blocks})
  np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks]), log1p[:, hvg].toarray())


def test_negative_counts_stop_the_totals_pass(tmp_path):
  x = _counts()
  x.data[4] = -1
  with pytest.raises(ValueError, match="negative or non-finite"):
    dataset._totals_pass(ad.AnnData(X=x), 10**6)


@pytest.mark.parametrize("backed", [False, True])
def test_ranges_last_first_are_the_same_ranges_reversed(tmp_path, backed):
  x = _counts()
  path = tmp_path / "x.h5ad"
  ad.AnnData(X=x).write_h5ad(path)
  adata = ad.read_h5ad(path, backed="r" if backed else None)
  copy = lambda r: (r[0], r[1], r[2].copy(), r[3].copy(), r[4].copy())  # buffers are reused
  forward = [copy(r) for r in count_passes.csr_ranges(adata, values_per_range=150)]
  backward = [copy(r) for r in count_passes.csr_ranges(adata, values_per_range=150,
                                                       last_first=True)]
  assert len(forward) > 3 and [r[:2] for r in backward] == [r[:2] for r in forward[::-1]]
  for a, b in zip(forward, backward[::-1]):
    for u, v in zip(a[2:], b[2:]):
      np.testing.assert_array_equal(u, v)
  rows = np.concatenate([np.repeat(np.arange(r[0], r[1]), np.diff(r[4])) for r in forward])
  np.testing.assert_array_equal(np.concatenate([r[2] for r in forward]), x.data)
  np.testing.assert_array_equal(rows, np.repeat(np.arange(50), np.diff(x.indptr)))
