"""Dataset preparation: streaming passes equal dense references; backed equals in memory."""

import numpy as np
import pytest

from conftest import shared
from vccjax.data import dataset, io, normalize
from vccjax.errors import InputError


@pytest.fixture(scope="module")
def h1():
  return dataset.load_dataset(shared("vcc_h1_subset.h5ad"), n_hvg=300, values_per_range=20_000)


def _dense_log1p(path):
  adata = io.read_h5ad(path)
  totals = normalize.cell_totals(adata.X)
  x = normalize.log1p_normalize(adata.X, target_sum=normalize.median_target_sum(totals)).toarray()
  return adata, x


def test_pseudobulks_and_effects_match_a_dense_computation(h1):
  adata, x = _dense_log1p(h1.path)
  labels = adata.obs.target_gene.astype(str).to_numpy()
  ctrl = labels == "non-targeting"
  np.testing.assert_allclose(h1.control_pseudobulk, x[ctrl].mean(0), rtol=1e-4, atol=1e-5)
  for i, t in enumerate(h1.targets):
    np.testing.assert_allclose(h1.target_pseudobulk[i], x[labels == t].mean(0), rtol=1e-4,
                               atol=1e-5)
  # Effects are against context-matched (shrunk) controls: close to, not equal to, the plain
  # difference; they must agree in direction on the strongest genes.
  plain = np.array([x[labels == t].mean(0) - x[ctrl].mean(0) for t in h1.targets])
  for i in range(len(h1.targets)):
    top = np.argsort(-np.abs(plain[i]))[:20]
    assert np.mean(np.sign(plain[i, top]) == np.sign(h1.target_effect[i, top])) >= 0.9


def test_hvg_matrix_is_the_scaled_data_on_the_chosen_genes(h1):
  _, x = _dense_log1p(h1.path)
  assert h1.hvg_log1p.shape == (600, 300)
  np.testing.assert_allclose(h1.hvg_log1p, x[:, h1.hvg], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(h1.log1p_rows(np.array([5, 1, 5])), x[[5, 1, 5]], rtol=1e-5,
                             atol=1e-6)


def test_measured_targets_are_always_input_genes(h1):
  measured = [g for g in h1.targets if g in set(h1.gene_names)]
  assert measured, "the VCC subset measures at least one of its targets"
  assert set(measured) <= set(h1.gene_names[h1.hvg])


def test_backed_reading_gives_the_same_dataset(h1):
  backed = dataset.load_dataset(h1.path, n_hvg=300, backed=True, values_per_range=20_000)
  np.testing.assert_array_equal(backed.hvg, h1.hvg)
  np.testing.assert_allclose(backed.hvg_log1p, h1.hvg_log1p)
  np.testing.assert_allclose(backed.target_effect, h1.target_effect, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(backed.log1p_rows(np.array([3, 2])), h1.log1p_rows(np.array([3, 2])))


def test_log1p_input_is_rejected_with_a_fix(tmp_path):
  adata, x = _dense_log1p(shared("vcc_h1_subset.h5ad"))
  adata.X = x
  path = tmp_path / "log1p.h5ad"
  adata.write_h5ad(path)
  with pytest.raises(InputError, match="raw UMI counts"):
    dataset.load_dataset(str(path))


def test_contexts_combine_batch_and_cell_type():
  ds = dataset.load_dataset(shared("mcfaline23_glioma.h5ad"))
  assert sorted(ds.context_names) == ["A172", "T98G", "U87MG"]
  ds = dataset.load_dataset(shared("datlinger17_jurkat.h5ad"))
  assert sorted(ds.context_names) == ["stimulated|Jurkat", "unstimulated|Jurkat"]


def test_cells_lfc_of_all_a_targets_cells_is_its_lfc(h1):
  for i, t in enumerate(h1.targets):
    np.testing.assert_allclose(h1.cells_lfc(h1.cells_of(t)), h1.target_lfc[i], rtol=1e-4,
                               atol=1e-5)
