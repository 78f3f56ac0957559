"""Wilcoxon rank-sum p-values and U against scipy.stats.mannwhitneyu(method="asymptotic")."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats

from vccjax import metrics
from vccjax.metrics import ranksum


def _data(seed, cells=300, genes=40, groups=5):
  rng = np.random.default_rng(seed)
  counts = rng.poisson(rng.gamma(0.6, 2.0, genes), (cells, genes))
  depth = rng.choice([0.5, 1.0, 1.5, 2.0], cells)[:, None]  # repeated depths: ties off zero
  x = np.log1p(counts / depth).astype(np.float32)
  x[:, 0] = 0.0      # all zero: s = 0, p = 1
  x[:, 1] = 2.5      # all equal and nonzero
  x[:, 2] = rng.random(cells).astype(np.float32) + 0.1  # no ties at all
  group = rng.integers(0, groups, cells)
  group[:4] = -1     # left out
  group[4] = groups - 1  # make sure the last group has a cell
  return x, group, groups


def _scipy(x, group, groups):
  u, p = [], []
  for g in range(1, groups):
    r = scipy.stats.mannwhitneyu(x[group == g].astype(np.float64),
                                 x[group == 0].astype(np.float64), method="asymptotic")
    u.append(r.statistic)
    p.append(np.where(np.isnan(r.pvalue), 1.0, r.pvalue))
  return np.array(u), np.array(p)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_u_and_p_equal_scipy(sparse, seed):
  x, group, groups = _data(seed)
  sums = metrics.rank_sums(log1p_expr=sp.csr_matrix(x) if sparse else x, group=group,
                           n_groups=groups)
  u, p = metrics.mannwhitney_vs_control(sums=sums)
  ref_u, ref_p = _scipy(x, group, groups)
  np.testing.assert_array_equal(u, ref_u)
  np.testing.assert_allclose(p, ref_p, rtol=1e-9, atol=1e-12)


def test_many_groups_and_stored_zeros():
  # 70 groups need 7 label bits; stored zeros (and -0.0) are zeros, as in the dense matrix.
  x, _, _ = _data(2, cells=700, genes=10)
  group = np.random.default_rng(3).integers(0, 70, 700)
  stored = sp.csr_matrix(x)
  stored.data[::7] = 0.0
  stored.data[3::11] = -0.0
  x = stored.toarray()
  a = metrics.rank_sums(log1p_expr=x, group=group, n_groups=70)
  b = metrics.rank_sums(log1p_expr=stored, group=group, n_groups=70)
  for name in ("nonzero", "control_at_or_below", "control_equal", "tie_terms", "value_sums"):
    np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
  u, p = metrics.mannwhitney_vs_control(sums=a)
  ref_u, ref_p = _scipy(x, group, 70)
  np.testing.assert_array_equal(u, ref_u)
  np.testing.assert_allclose(p, ref_p, rtol=1e-9, atol=1e-12)


def test_wide_value_range_uses_64_bit_keys():
  # Values from 1e-30 to 10 span too many binades for 32-bit keys.
  rng = np.random.default_rng(4)
  x = (10.0 ** rng.uniform(-30, 1, (120, 6))).astype(np.float32)
  x[rng.random(x.shape) < 0.3] = 0
  group = rng.integers(0, 3, 120)
  u, p = metrics.mannwhitney_vs_control(
      sums=metrics.rank_sums(log1p_expr=x, group=group, n_groups=3))
  ref_u, ref_p = _scipy(x, group, 3)
  np.testing.assert_array_equal(u, ref_u)
  np.testing.assert_allclose(p, ref_p, rtol=1e-9, atol=1e-12)


def test_row_chunks_and_threads_give_the_same_sums(monkeypatch):
  # Many small chunks (each regrouped by gene on its own), several threads, loose key bounds.
  x, group, groups = _data(5, cells=500)
  reference = metrics.rank_sums(log1p_expr=x, group=group, n_groups=groups, threads=1)
  csr = sp.csr_matrix(x)
  chunks = [(group[s:s + 37], csr[s:s + 37]) for s in range(0, 500, 37)]
  key_format = ranksum.KeyFormat.for_values(low=0.01, high=14.0, n_groups=groups)
  chunked = ranksum.rank_sums_of_chunks(chunks=chunks, n_genes=x.shape[1], n_groups=groups,
                                        key_format=key_format, threads=3)
  # Sort keys in one buffer of a pool that two calls share (the second reuses the first's).
  pool = metrics.ScratchPool()
  pooled = [ranksum.rank_sums_of_chunks(chunks=chunks, n_genes=x.shape[1], n_groups=groups,
                                        key_format=key_format, threads=2, buffers=pool,
                                        n_values=csr.nnz) for _ in range(2)]
  monkeypatch.setattr(ranksum, "_VALUES_PER_BATCH", 64)  # many small batches of genes
  batched = metrics.rank_sums(log1p_expr=x, group=group, n_groups=groups, threads=2)
  for result in (chunked, batched, *pooled):
    np.testing.assert_array_equal(result.group_sizes, reference.group_sizes)
    for name in ("nonzero", "control_at_or_below", "control_equal", "tie_terms", "value_sums"):
      np.testing.assert_array_equal(getattr(result, name), getattr(reference, name))


def test_values_outside_the_key_range_are_refused():
  x, group, groups = _data(6)
  key_format = ranksum.KeyFormat.for_values(low=1.0, high=2.0, n_groups=groups)
  with pytest.raises(ValueError, match="outside the range"):
    ranksum.rank_sums_of_chunks(chunks=[(group, sp.csr_matrix(x))], n_genes=x.shape[1],
                                n_groups=groups, key_format=key_format)
