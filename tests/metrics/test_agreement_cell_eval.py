"""Our DES, PDS, MAE, baseline and overall score against the official cell-eval 0.6.6 (VCC 2025).

cell-eval runs once per module, in its own process (`vcc_screens.run_cell_eval`), on every
fixture: synthetic counts screens (ties, an empty true DE set, more predicted than true DE genes,
two swapped perturbations), a prediction written as log1p floats, and the real VCC H1 subset
against a thinned copy of itself, with the cell-mean baseline built from it.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import vcc_screens
from conftest import shared
from vccjax.score import __main__ as score_command
from vccjax.score import file_scores
from vccjax import metrics
from vccjax.data import io

TOL = 1e-6


def _swap(adata, a, b):
  """Prediction with the labels of perturbations `a` and `b` exchanged (PDS must notice)."""
  out = adata.copy()
  t = out.obs["target_gene"].astype(str).to_numpy()
  out.obs["target_gene"] = np.where(t == a, b, np.where(t == b, a, t))
  return out


def _thinned(adata, seed, keep=0.7):
  rng = np.random.default_rng(seed)
  out = adata.copy()
  out.X = out.X.copy()
  out.X.data = rng.binomial(out.X.data.astype(np.int64), keep).astype(np.float32)
  out.X.eliminate_zeros()
  return out


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
  d = tmp_path_factory.mktemp("agreement")
  w = vcc_screens.write
  real = vcc_screens.screen(seed=0)
  pred = _swap(vcc_screens.screen(seed=1, effect_scale=1.8), "G001", "G002")
  subset = io.read_h5ad(shared("vcc_h1_subset.h5ad"))
  subset.obs = subset.obs[["target_gene"]].astype(str)
  counts = pd.DataFrame({"target_gene": ["MED12", "SRC", "STAT1", "TET1", "TMSB4X"],
                         "n_cells": [60, 100, 80, 100, 40]})
  counts.to_csv(d / "pert_counts.csv", index=False)
  paths = {
      "real": w(real, d / "real.h5ad"),
      "pred": w(pred, d / "pred.h5ad"),
      "pred_log1p": w(vcc_screens.as_log1p(vcc_screens.screen(seed=2, effect_scale=0.6)),
                      d / "pred_log1p.h5ad"),
      "subset": w(subset, d / "subset.h5ad"),
      "subset_pred": w(_swap(_thinned(subset, 3), "SRC", "TET1"), d / "subset_pred.h5ad"),
      "pert_counts": str(d / "pert_counts.csv"),
      "ce_baseline": str(d / "ce_baseline.h5ad"),
  }
  # The same real cells stored dense and the prediction stored CSC (cell-eval reads both).
  dense = subset.copy()
  dense.X = subset.X.toarray()
  paths["subset_dense"] = w(dense, d / "subset_dense.h5ad")
  pred_csc = io.read_h5ad(paths["subset_pred"])
  pred_csc.X = pred_csc.X.tocsc()
  paths["subset_pred_csc"] = w(pred_csc, d / "subset_pred_csc.h5ad")
  tasks = [
      {"name": "counts", "pred": paths["pred"], "real": paths["real"]},
      {"name": "log1p", "pred": paths["pred_log1p"], "real": paths["real"]},
      {"name": "subset", "pred": paths["subset_pred"], "real": paths["subset"],
       "train": paths["subset"], "pert_counts": paths["pert_counts"],
       "baseline_out": paths["ce_baseline"]},
      {"name": "layouts", "pred": paths["subset_pred_csc"], "real": paths["subset_dense"],
       "train": paths["subset_dense"], "pert_counts": paths["pert_counts"]},
  ]
  return paths, vcc_screens.run_cell_eval(tasks, str(d))


def _assert_matches(ours, theirs):
  table = pd.DataFrame(ours.table()).set_index("perturbation")
  ref = pd.DataFrame(theirs).T.loc[table.index]
  for metric in ("des", "pds", "mae"):
    np.testing.assert_allclose(table[metric], ref[metric], rtol=0, atol=TOL, err_msg=metric)


@pytest.mark.parametrize("name,pred", [("counts", "pred"), ("log1p", "pred_log1p"),
                                       ("subset", "subset_pred")])
def test_per_perturbation_scores_match_cell_eval(cases, name, pred):
  paths, ref = cases
  real = "subset" if name == "subset" else "real"
  ours = file_scores.raw_file_scores(pred_path=paths[pred], real_path=paths[real])
  _assert_matches(ours, ref[name]["per_perturbation"])


def test_fixtures_exercise_the_edge_cases(cases):
  paths, ref = cases
  ours = file_scores.raw_file_scores(pred_path=paths["pred"], real_path=paths["real"])
  assert (ours.n_true_de == 0).any(), "no perturbation with an empty true DE set"
  assert (ours.n_pred_de > ours.n_true_de).any(), "no prediction with extra DE genes"
  assert (ours.pds < 1).any(), "PDS never below 1: the swap did not show"
  assert 0 < ours.means()["des"] < 1


def test_baseline_and_overall_score_match_cell_eval(cases, tmp_path):
  paths, ref = cases
  ce = ref["subset"]
  json_path = tmp_path / "scores.json"
  built = score_command.main(["--pred", paths["subset_pred"], "--real", paths["subset"], "--train",
                              paths["subset"], "--pert-counts", paths["pert_counts"], "--json",
                              str(json_path)])
  read = file_scores.score_files(pred_path=paths["subset_pred"], real_path=paths["subset"],
                                 baseline_path=paths["ce_baseline"])
  for ours in (built, read):
    for metric in ("des", "pds", "mae"):
      assert abs(ours["model"][metric] - ce["means"][metric]) < TOL
      assert abs(ours["baseline"][metric] - ce["baseline_means"][metric]) < TOL
    ce_scaled = {"des": ce["scores"]["overlap_at_N"],
                 "pds": ce["scores"]["discrimination_score_l1"], "mae": ce["scores"]["mae"]}
    for metric, value in ce_scaled.items():
      assert abs(ours["scaled"][f"{metric}_scaled"] - value) < TOL
    assert abs(ours["overall"] / 100 - ce["scores"]["avg_score"]) < TOL
  assert json_path.exists()


def test_dense_and_csc_files_score_as_cell_eval_scores_them(cases):
  paths, ref = cases
  ce = ref["layouts"]
  ours = file_scores.score_files(pred_path=paths["subset_pred_csc"],
                                 real_path=paths["subset_dense"], train_path=paths["subset_dense"],
                                 pert_counts_path=paths["pert_counts"])
  for metric in ("des", "pds", "mae"):
    assert abs(ours["model"][metric] - ce["means"][metric]) < TOL
    assert abs(ours["baseline"][metric] - ce["baseline_means"][metric]) < TOL
  assert abs(ours["overall"] / 100 - ce["scores"]["avg_score"]) < TOL


def test_cell_mean_baseline_cells_match_cell_eval(cases):
  paths, ref = cases
  counts = io.read_pert_counts(paths["pert_counts"])
  profile, controls, _ = file_scores.training_profile(paths["subset"],
                                                      control_label="non-targeting")
  log1p, targets = metrics.assemble_baseline(
      profile=profile, control_log1p=sp.vstack(controls, format="csr"),
      pert_counts=dict(zip(counts.target_gene, counts.n_cells)), control_label="non-targeting")
  ce = ref["subset"]
  np.testing.assert_allclose(log1p[:3], np.array(ce["baseline_X_head"]), rtol=1e-6, atol=1e-7)
  assert targets.tolist() == ce["baseline_obs"]
