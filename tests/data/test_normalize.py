"""VCC scaling against scanpy (what cell-eval runs) and HVG selection."""

import numpy as np
import scanpy as sc
import scipy.sparse as sp

from conftest import shared
from vccjax.data import io, normalize


def test_scaling_matches_scanpy_normalize_total_log1p():
  adata = io.read_h5ad(shared("vcc_h1_subset.h5ad"))
  totals = normalize.cell_totals(adata.X)
  ours = normalize.log1p_normalize(adata.X, target_sum=normalize.median_target_sum(totals))
  ref = adata.copy()
  sc.pp.normalize_total(ref)
  sc.pp.log1p(ref)
  np.testing.assert_allclose(ours.toarray(), ref.X.toarray(), rtol=1e-6, atol=1e-6)


def test_dense_and_sparse_scaling_agree():
  rng = np.random.default_rng(0)
  counts = rng.poisson(2.0, (30, 12)).astype(np.float32)
  dense = normalize.log1p_normalize(counts, target_sum=100.0)
  sparse = normalize.log1p_normalize(sp.csr_matrix(counts), target_sum=100.0)
  np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-6)
  np.testing.assert_allclose(np.expm1(dense).sum(1)[counts.sum(1) > 0], 100.0, rtol=1e-4)


def test_fractional_detection():
  assert not normalize.has_fractional_values(sp.csr_matrix(np.array([[0, 3, 7.0]])))
  assert normalize.has_fractional_values(np.array([[0, 0.69, 1.0]]))


def test_hvg_prefers_variable_genes_within_mean_bins_and_keeps_forced_genes():
  rng = np.random.default_rng(2)
  mean = np.repeat(np.linspace(0.1, 3, 20), 10)  # 200 genes, 20 expression levels
  var = mean * rng.uniform(0.5, 1.5, 200)
  var[::10] *= 10  # the first gene of each level is far more variable than its peers
  chosen = normalize.select_hvg(mean, var, 20, always_include=np.array([5]))
  assert 5 in chosen
  assert len(chosen) == 20
  assert len(set(range(0, 200, 10)) & set(chosen.tolist())) >= 18
