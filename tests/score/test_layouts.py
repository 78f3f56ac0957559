"""Every layout `X` can have in an .h5ad scores the same: dense, CSR, CSC, counts or log1p."""

import os
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tests", "metrics"))
import vcc_screens  # noqa: E402
from vccjax import metrics  # noqa: E402
from vccjax.errors import InputError  # noqa: E402
from vccjax.score import file_scores, stored_x  # noqa: E402
from vccjax.data import io  # noqa: E402

LAYOUTS = ["csr", "csc", "dense", "dense_int32", "dense_float64", "dense_chunked", "csr_log1p",
           "csc_log1p", "dense_log1p"]


def write_layout(adata: ad.AnnData, path, layout: str) -> str:
  """`adata` (raw counts) written in `layout`; *_log1p: the VCC log1p of the counts instead."""
  x = adata.X.toarray()
  if layout.endswith("log1p"):
    x = metrics.to_vcc_log1p(sp.csr_matrix(x)).toarray()
  stored = {"csr": sp.csr_matrix, "csc": sp.csc_matrix}.get(layout.split("_")[0])
  if stored is not None:
    x = stored(x)
  elif layout == "dense_int32":
    x = x.astype(np.int32)
  elif layout == "dense_float64":
    x = x.astype(np.float64)
  out = ad.AnnData(X=x, obs=adata.obs.copy(), var=adata.var.copy())
  if layout == "dense_chunked":  # an HDF5 chunked dataset (anndata writes contiguous ones)
    out.write_h5ad(path, compression="gzip")
  else:
    out.write_h5ad(path)
  return str(path)


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
  d = tmp_path_factory.mktemp("layouts")
  real = vcc_screens.screen(seed=0, n_perts=4, n_genes=70)
  pred = vcc_screens.screen(seed=1, n_perts=4, n_genes=70, effect_scale=0.5)
  train = vcc_screens.screen(seed=5, n_perts=4, n_genes=70)
  pd.DataFrame({"target_gene": ["G000", "G001", "G002", "G003"], "n_cells": [30] * 4}).to_csv(
      d / "counts.csv", index=False)
  return d, real, pred, train


@pytest.fixture(scope="module")
def csr_scores(screens):
  d, real, pred, train = screens
  paths = {name: write_layout(a, d / f"{name}_csr.h5ad", "csr")
           for name, a in (("real", real), ("pred", pred), ("train", train))}
  return file_scores.score_files(pred_path=paths["pred"], real_path=paths["real"],
                                 train_path=paths["train"], pert_counts_path=str(d / "counts.csv"),
                                 fdr="per_perturbation")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_scores_as_csr_counts(screens, csr_scores, layout):
  d, real, pred, train = screens
  paths = {name: write_layout(a, d / f"{name}_{layout}.h5ad", layout)
           for name, a in (("real", real), ("pred", pred), ("train", train))}
  scores = file_scores.score_files(pred_path=paths["pred"], real_path=paths["real"],
                                   train_path=paths["train"],
                                   pert_counts_path=str(d / "counts.csv"), fdr="per_perturbation")
  for part in ("model", "baseline", "scaled"):
    assert scores[part] == csr_scores[part], part
  assert scores["per_perturbation"] == csr_scores["per_perturbation"]
  assert 0 < csr_scores["overall"] < 100  # a score that can tell two layouts apart


def test_several_predictions_score_as_each_alone(screens, csr_scores):
  """`score_predictions` (real and baseline summarised once) gives each file `score_files`'s
  scores, in any mix of layouts."""
  d, real, pred, train = screens
  real_path = write_layout(real, d / "real_multi.h5ad", "csr")
  preds = [write_layout(pred, d / "pred_multi_dense.h5ad", "dense"),
           write_layout(real, d / "pred_multi_real.h5ad", "csc")]
  kwargs = dict(real_path=real_path, train_path=write_layout(train, d / "train_multi.h5ad", "csr"),
                pert_counts_path=str(d / "counts.csv"), fdr="per_perturbation")
  together = file_scores.score_predictions(preds, **kwargs)
  assert together[0]["scaled"] == csr_scores["scaled"]
  for path, scores in zip(preds, together):
    alone = file_scores.score_files(pred_path=path, **kwargs)
    for part in ("model", "baseline", "scaled", "per_perturbation"):
      assert scores[part] == alone[part], (path, part)
    assert scores["settings"]["pred"] == path
  assert together[1]["overall"] > together[0]["overall"]  # the real cells themselves score best


def test_every_stored_layout_has_a_direct_reader(screens):
  d, real, _, _ = screens
  for layout in ("csr", "dense", "dense_chunked", "csc"):
    adata = io.read_h5ad(write_layout(real, d / f"probe_{layout}.h5ad", layout), backed=True)
    assert stored_x.direct_reader(adata) is not None, layout


@pytest.mark.parametrize("value,verdict", [
    (5.0005, "counts"),         # a fractional part of 5e-4: cell-eval calls it counts
    (5.002, "log1p"),
    (5.0010000001, "log1p"),    # float64 says > 1e-3, its float32 rounding says < 1e-3
    (15.5, "rejected"),         # fractional and >= 15
    (-0.5, "rejected"),         # fractional and negative
])
def test_dense_float_file_is_judged_as_cell_eval_judges_it(tmp_path, value, verdict):
  guess_is_lognorm = pytest.importorskip("cell_eval.utils").guess_is_lognorm
  rng = np.random.default_rng(0)
  x = rng.poisson(2.0, (30, 12)).astype(np.float64) / 4  # quarters: log1p unless overwritten
  x = np.floor(x) if verdict == "counts" or value > 0 else x
  x = np.where(x >= 15, 14, x)
  x[7, 3] = value
  adata = ad.AnnData(X=x, obs=pd.DataFrame({"target_gene": ["non-targeting"] * 30},
                                           index=[f"c{i}" for i in range(30)]))
  try:
    theirs = "log1p" if guess_is_lognorm(adata=adata.copy()) else "counts"
  except ValueError:
    theirs = "rejected"
  path = tmp_path / "x.h5ad"
  adata.write_h5ad(path)
  stored = stored_x.direct_reader(io.read_h5ad(str(path), backed=True))
  try:
    plan = metrics.plan_scaling_of_rows(stored, where=str(path))
    ours = "counts" if plan.counts else "log1p"
  except InputError:
    ours = "rejected"
  assert ours == theirs == verdict
