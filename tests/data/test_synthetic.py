"""Tests of the synthetic VCC-layout screen generator (layout, determinism, biology, CLI)."""

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats as st

from vccjax.data import synthetic
from vccjax.data.synthetic_model import Biology, build_model, cell_design, gene_embeddings
from vccjax.errors import InputError

# Strong effects, so that a few thousand cells show the structure clearly.
BIOLOGY = Biology(strength_median=0.15, strength_log_sd=0.5)
ARGS = dict(n_cells=5000, n_genes=300, n_targets=24, n_batches=3, median_umi=20_000,
            biology=BIOLOGY, seed=3)


@pytest.fixture(scope="module")
def screen():
  return synthetic.generate_synthetic(**ARGS)


@pytest.fixture(scope="module")
def model():
  return synthetic.plan_screen(**ARGS).model


def _log1p_norm(x):
  """[cells, genes] dense log1p of counts scaled to 10,000 per cell (NumPy reference)."""
  x = np.asarray(x.todense() if sp.issparse(x) else x, dtype=np.float64)
  return np.log1p(x / x.sum(1, keepdims=True) * 1e4)


def _pseudobulk_effects(adata, perturbations):
  """[perts, genes] mean log1p-normalised expression of each perturbation minus controls."""
  expr = _log1p_norm(adata.X)
  target = adata.obs.target_gene.astype(str).to_numpy()
  control = expr[target == "non-targeting"].mean(0)
  return np.stack([expr[target == p].mean(0) - control for p in perturbations])


def test_layout(screen):
  obs, var = screen.obs, screen.var
  assert list(obs.columns) == ["target_gene", "guide_id", "batch", "cell_type"]
  assert sp.isspmatrix_csr(screen.X) and screen.X.dtype == np.float32
  assert np.all(screen.X.data == np.round(screen.X.data)) and screen.X.data.min() >= 1
  assert var.index[0] == "SYN00001" and var.gene_id.str.startswith("ENSSYN").all()
  targets = set(obs.target_gene.astype(str)) - {"non-targeting"}
  assert len(targets) == ARGS["n_targets"] and targets <= set(var.index)
  assert (obs.target_gene == "non-targeting").sum() == 500
  per_batch = obs.groupby(["target_gene", "batch"], observed=False).size().unstack()
  assert per_batch.shape == (25, 3) and (per_batch > 0).all().all()
  assert set(obs.cell_type) == {"H1"}
  assert obs.guide_id[obs.target_gene != "non-targeting"].str.match(r"SYN\d+_P1P2_A\|").all()
  assert obs.guide_id[obs.target_gene == "non-targeting"].str.startswith("non-targeting_").all()
  truth = screen.uns["synthetic"]
  assert truth["log_fold_change"].shape == (24, 300) and len(truth["perturbations"]) == 24


def test_depth_and_overdispersion(screen):
  x = screen.X.toarray()
  controls = x[(screen.obs.target_gene == "non-targeting").to_numpy()]
  assert abs(np.median(controls.sum(1)) / ARGS["median_umi"] - 1) < 0.15
  # NB plus program variation: variance of high genes clearly above the Poisson mean.
  frac = controls / controls.sum(1, keepdims=True) * np.median(controls.sum(1))
  high = frac.mean(0) > 50
  assert np.median(frac.var(0)[high] / frac.mean(0)[high]) > 3


def test_same_seed_same_screen_other_seed_differs(screen):
  again = synthetic.generate_synthetic(**ARGS)
  assert (again.X != screen.X).nnz == 0
  assert (again.obs == screen.obs).all().all()
  other = synthetic.generate_synthetic(**{**ARGS, "seed": 4})
  assert (other.X != screen.X).nnz > 0


def test_streamed_file_equals_in_memory_for_any_chunking(screen, tmp_path):
  paths = [tmp_path / "a.h5ad", tmp_path / "b.h5ad"]
  synthetic.write_synthetic(paths[0], chunk_size=97, workers=1, **ARGS)
  summary = synthetic.write_synthetic(paths[1], chunk_size=1500, workers=2, **ARGS)
  assert summary.nnz == screen.X.nnz and summary.n_cells == 5000
  for path in paths:
    with h5py.File(path, "r") as f:  # 64-bit offsets: the full VCC shape has > 2^31 non-zeros
      assert f["X/indptr"].dtype == np.int64
    back = ad.read_h5ad(path)  # the anndata round trip
    assert back.X.dtype == np.float32 and (back.X != screen.X).nnz == 0
    assert back.obs.index.equals(screen.obs.index)
    for column in screen.obs.columns:
      assert (back.obs[column].astype(str) == screen.obs[column].astype(str)).all()
    assert back.var.equals(screen.var)
    for key, value in screen.uns["synthetic"].items():
      np.testing.assert_array_equal(back.uns["synthetic"][key], value)


def test_knockdown_lowers_the_target_gene(screen):
  expr = np.expm1(_log1p_norm(screen.X))
  target = screen.obs.target_gene.astype(str).to_numpy()
  control = expr[target == "non-targeting"].mean(0)
  for t in set(target) - {"non-targeting"}:
    g = screen.var.index.get_loc(t)
    assert expr[target == t, g].mean() < 0.5 * control[g], t


def test_pseudobulk_effects_match_the_truth(screen):
  truth = screen.uns["synthetic"]
  effects = _pseudobulk_effects(screen, truth["perturbations"])
  corr = [np.corrcoef(e, t)[0, 1] for e, t in zip(effects, truth["log_fold_change"])]
  assert np.median(corr) > 0.6, corr


def test_similar_loadings_give_correlated_effects(screen, model):
  effects = _pseudobulk_effects(screen, model.perturbations)
  effects[:, model.target_genes] = 0  # compare downstream genes only
  loadings = model.loadings[model.target_genes]
  similarity = np.corrcoef(loadings)
  effect_corr = np.corrcoef(effects)
  pairs = np.triu_indices(len(loadings), 1)
  assert st.spearmanr(similarity[pairs], effect_corr[pairs])[0] > 0.3


def test_unseen_target_effects_predictable_from_embeddings():
  """Ridge from gene embeddings to true effects, fitted on 150 targets, predicts 50 others."""
  model = build_model(n_genes=2000, n_targets=200, seed=1)
  x = gene_embeddings(model, seed=1)[model.target_genes]
  y = model.log_effect / model.strength[:, None]
  y[np.arange(200), model.target_genes] = 0
  train, test = np.arange(150), np.arange(150, 200)
  w = np.linalg.solve(x[train].T @ x[train] + 1.0 * np.eye(x.shape[1]), x[train].T @ y[train])
  corr = [np.corrcoef(p, t)[0, 1] for p, t in zip(x[test] @ w, y[test])]
  assert np.median(corr) > 0.5, np.median(corr)


def test_cells_per_target_fall_with_strength():
  model = build_model(n_genes=2000, n_targets=150, n_batches=4, seed=2)
  design = cell_design(model, n_cells=150_000, control_fraction=0.1, n_batches=4, seed=2)
  counts = np.bincount(design.perturbation[design.perturbation >= 0], minlength=150)
  assert counts.max() > 3 * counts.min()
  assert st.spearmanr(counts, model.strength)[0] < -0.4


def test_doubles_are_roughly_additive(model):
  double = synthetic.plan_screen(**{**ARGS, "n_doubles": 4}).model
  labels = double.perturbations[24:]
  assert len(labels) == 4 and all("+" in p for p in labels)
  for p, effect in zip(labels, double.log_effect[24:]):
    a, b = (double.perturbations.index(g) for g in p.split("+"))
    additive = double.log_effect[a] + double.log_effect[b]
    assert np.corrcoef(effect, additive)[0, 1] > 0.9
  screen = synthetic.generate_synthetic(**{**ARGS, "n_doubles": 4})
  assert set(labels) <= set(screen.obs.target_gene.astype(str))


def test_embeddings_file_is_a_noisy_view_of_loadings(model, tmp_path):
  path = tmp_path / "e.npz"
  synthetic.write_embeddings(path, **{k: v for k, v in ARGS.items() if k != "n_cells"})
  z = np.load(path)
  assert z["genes"].tolist() == model.gene_names.tolist()
  assert z["embeddings"].shape == (300, 32) and z["embeddings"].dtype == np.float32
  coef, *_ = np.linalg.lstsq(z["embeddings"], model.loadings, rcond=None)
  r2 = 1 - ((z["embeddings"] @ coef - model.loadings) ** 2).sum() / (model.loadings ** 2).sum()
  assert 0.5 < r2 < 0.99


def test_cli_writes_file_embeddings_and_summary(tmp_path, capsys):
  out, emb = tmp_path / "s.h5ad", tmp_path / "e.npz"
  synthetic.main(["--out", str(out), "--cells", "600", "--genes", "100", "--targets", "5",
                  "--batches", "2", "--umi", "5000", "--seed", "1", "--doubles", "1",
                  "--embeddings-out", str(emb), "--workers", "1"])
  assert "wrote" in capsys.readouterr().out
  adata = ad.read_h5ad(out)
  assert adata.shape == (600, 100) and adata.obs.target_gene.str.contains(r"\+").any()
  assert np.load(emb)["embeddings"].shape == (100, 32)


@pytest.mark.parametrize("change", [dict(n_targets=200), dict(n_cells=30),
                                    dict(n_doubles=300), dict(control_fraction=0.0)])
def test_bad_arguments_raise_input_error(change):
  with pytest.raises(InputError):
    synthetic.plan_screen(**{**ARGS, **change})
