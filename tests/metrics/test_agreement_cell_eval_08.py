"""The per-perturbation FDR mode against cell-eval 0.8.x (pdex 0.3), run from `.venv-ce08`.

cell-eval >= 0.7 corrects each perturbation's tests on their own and leaves a fold change with a
zero side infinite; `fdr="per_perturbation"` with `fold_change_clip=None` are those rules.
cell-eval 0.8 needs pdex >= 0.2, which cannot share a virtualenv with cell-eval 0.6.6's pinned
pdex 0.1.27, so it lives in `.venv-ce08` (made by `.ci/run`) and runs as a subprocess.
"""

import os

import numpy as np
import pandas as pd
import pytest

import vcc_screens
from conftest import shared
from vccjax.score import file_scores
from vccjax.data import io

pytestmark = pytest.mark.skipif(
    not os.path.exists(vcc_screens.VENV_CE08_PYTHON),
    reason=f"no cell-eval 0.8 virtualenv at {vcc_screens.VENV_CE08_PYTHON} (.ci/run creates it: "
           "python3 -m venv .venv-ce08 && .venv-ce08/bin/pip install 'cell-eval>=0.8,<0.9')")

RULES = {"fdr": "per_perturbation", "fold_change_clip": None}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
  d = tmp_path_factory.mktemp("agreement08")
  w = vcc_screens.write
  subset = io.read_h5ad(shared("vcc_h1_subset.h5ad"))
  subset.obs = subset.obs[["target_gene"]].astype(str)
  rng = np.random.default_rng(5)
  thinned = subset.copy()
  thinned.X = thinned.X.copy()
  thinned.X.data = rng.binomial(thinned.X.data.astype(np.int64), 0.6).astype(np.float32)
  thinned.X.eliminate_zeros()
  pd.DataFrame({"target_gene": ["MED12", "SRC", "STAT1", "TET1", "TMSB4X"],
                "n_cells": [50, 100, 70, 100, 30]}).to_csv(d / "counts.csv", index=False)
  paths = {"real": w(vcc_screens.screen(seed=0), d / "real.h5ad"),
           "pred": w(vcc_screens.screen(seed=1, effect_scale=1.8), d / "pred.h5ad"),
           "pred_log1p": w(vcc_screens.as_log1p(vcc_screens.screen(seed=2, effect_scale=0.6),
                                                dense=False), d / "pred_log1p.h5ad"),
           "subset": w(subset, d / "subset.h5ad"),
           "subset_pred": w(thinned, d / "subset_pred.h5ad"),
           "counts": str(d / "counts.csv")}
  tasks = [{"name": "counts", "pred": paths["pred"], "real": paths["real"]},
           {"name": "log1p", "pred": paths["pred_log1p"], "real": paths["real"]},
           {"name": "subset", "pred": paths["subset_pred"], "real": paths["subset"],
            "train": paths["subset"], "pert_counts": paths["counts"]}]
  return paths, vcc_screens.run_cell_eval(tasks, str(d), python=vcc_screens.VENV_CE08_PYTHON)


@pytest.mark.parametrize("name,pred,real", [("counts", "pred", "real"),
                                            ("log1p", "pred_log1p", "real"),
                                            ("subset", "subset_pred", "subset")])
def test_per_perturbation_mode_matches_cell_eval_08(cases, name, pred, real):
  paths, ref = cases
  ours = file_scores.raw_file_scores(pred_path=paths[pred], real_path=paths[real], **RULES)
  table = pd.DataFrame(ours.table()).set_index("perturbation")
  theirs = pd.DataFrame(ref[name]["per_perturbation"]).T.loc[table.index]
  for metric in ("des", "pds", "mae"):
    np.testing.assert_allclose(table[metric], theirs[metric], rtol=0, atol=1e-6, err_msg=metric)


def test_overall_score_matches_cell_eval_08(cases):
  paths, ref = cases
  ours = file_scores.score_files(pred_path=paths["subset_pred"], real_path=paths["subset"],
                                 train_path=paths["subset"], pert_counts_path=paths["counts"],
                                 **RULES)
  assert abs(ours["overall"] / 100 - ref["subset"]["scores"]["avg_score"]) < 1e-6


def test_the_two_rule_sets_differ_on_this_fixture(cases):
  """Guards the test above: per-perturbation FDR must change something here."""
  paths, _ = cases
  a = file_scores.raw_file_scores(pred_path=paths["pred"], real_path=paths["real"])
  b = file_scores.raw_file_scores(pred_path=paths["pred"], real_path=paths["real"], **RULES)
  assert not np.array_equal(a.n_pred_de, b.n_pred_de)
