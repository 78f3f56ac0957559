"""Prediction: a trained run writes a submission that validate and `cell-eval prep` accept."""

import os
import shutil
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import CONFIG, run_module, shared
from vccjax import atomic
from vccjax.predict import __main__ as predict_command

HELD_OUT = ["FOXO4", "KLF1", "SGK1"]


@pytest.fixture(scope="module")
def norman_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("norman_run")
  run_module("vccjax.main", f"--config={CONFIG}:tiny", f"--workdir={workdir}",
             f"--config.data.path={shared('norman19_k562.h5ad')}",
             f"--config.data.test_targets={','.join(HELD_OUT)}",
             "--config.data.val_targets=MAPK1,HK2", "--config.data.max_genes_per_target=2",
             "--config.features.sources=go", "--config.train.steps=10",
             f"--config.features.go_path={shared('go_bp_annotations.tsv.gz')}")
  return workdir


def _inputs(tmp_path, counts):
  genes = ad.read_h5ad(shared("norman19_k562.h5ad"), backed="r").var_names.tolist()
  (tmp_path / "genes.csv").write_text("\n".join(genes) + "\n")
  (tmp_path / "pc.csv").write_text("target_gene,n_cells,median_umi_per_cell\n" + "".join(
      f"{t},{n},120\n" for t, n in counts.items()))
  return tmp_path / "genes.csv", tmp_path / "pc.csv", genes


def test_submission_is_valid_and_accepted_by_cell_eval_prep(norman_run, tmp_path):
  counts = {"FOXO4": 37, "KLF1": 12, "SGK1": 25}
  genes_csv, pc_csv, genes = _inputs(tmp_path, counts)
  out = tmp_path / "pred.h5ad"
  vcc = shutil.which("cell-eval") is not None
  run_module("vccjax.predict", "--workdir", norman_run, "--pert-counts", pc_csv, "--genes",
             genes_csv, "--out", out, "--n-controls", 50, *(["--vcc"] if vcc else []))
  pred = ad.read_h5ad(out)
  assert pred.var_names.tolist() == genes
  got = pred.obs.target_gene.value_counts().to_dict()
  assert got == {**counts, "non-targeting": 50}
  x = pred.X.toarray() if hasattr(pred.X, "toarray") else pred.X
  assert np.isfinite(x).all() and x.min() >= 0 and x.max() < 15
  run_module("vccjax.data.validate", out, "--role", "submission", "--genes", genes_csv,
             "--pert-counts", pc_csv)
  if not vcc:
    pytest.skip("cell-eval not installed: prep not checked")
  assert os.path.exists(tmp_path / "pred.prep.vcc")
  assert not [p for p in os.listdir(tmp_path) if atomic.MARK in p]


def test_unknown_target_is_a_clear_error(norman_run, tmp_path):
  genes_csv, pc_csv, _ = _inputs(tmp_path, {"FOXO4": 5, "NOTAGENE1": 5})
  proc = run_module("vccjax.predict", "--workdir", norman_run, "--pert-counts", pc_csv,
                    "--genes", genes_csv, "--out", tmp_path / "p.h5ad", check=False)
  assert proc.returncode == 1
  assert "NOTAGENE1" in proc.stderr and "Traceback" not in proc.stderr
  assert "--allow-featureless" in proc.stderr
  assert not (tmp_path / "p.h5ad").exists()


@pytest.mark.parametrize("pert_counts, genes, needle", [
    ("target_gene,n_cells\nFOXO4,many\n", "G1\nG2\n", "n_cells of 'FOXO4' is 'many'"),
    ("target_gene,n_cells\nFOXO4,2.5\n", "G1\nG2\n", "n_cells of 'FOXO4' is '2.5'"),
    ("", "G1\nG2\n", "pc.csv: pert_counts file is empty"),
    ("target_gene,n_cells\n", "G1\nG2\n", "pc.csv: pert_counts has a header but no targets"),
    ("target_gene,n_cells\nFOXO4,5\n", "G1\nG2\nG1\n", "genes.csv:3: gene 'G1' appears twice"),
])
def test_bad_inputs_stop_before_the_run_is_loaded(tmp_path, pert_counts, genes, needle):
  (tmp_path / "pc.csv").write_text(pert_counts)
  (tmp_path / "genes.csv").write_text(genes)
  proc = run_module("vccjax.predict", "--workdir", tmp_path / "no_run", "--pert-counts",
                    tmp_path / "pc.csv", "--genes", tmp_path / "genes.csv", "--out",
                    tmp_path / "p.h5ad", check=False)
  assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
  assert needle in proc.stderr


def test_vcc_without_cell_eval_stops_before_predicting(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(shutil, "which", lambda name: None)
  monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
  with pytest.raises(SystemExit) as stop:  # the run does not exist: the --vcc check came first
    predict_command.main(["--workdir", str(tmp_path / "no_run"), "--pert-counts", "x.csv",
                          "--genes", "g.csv", "--out", str(tmp_path / "p.h5ad"), "--vcc"])
  assert stop.value.code == 1
  assert capsys.readouterr().err == ("error: --vcc: cell-eval is not installed (fix: pip install "
                                     "cell-eval==0.6.6)\n")


def test_held_out_targets_never_reach_training(norman_run):
  import json
  cfg = json.load(open(os.path.join(norman_run, "config.json")))
  assert cfg["data"]["test_targets"] == ",".join(HELD_OUT)
  from vccjax.experiment import training_data
  from vccjax.predict import trained_run
  exp, _, _ = trained_run.load_trained(str(norman_run))
  sampler = training_data.make_sampler(exp, exp.config)
  assert not set(sampler.targets) & set(HELD_OUT + ["MAPK1", "HK2"])
  used = set(exp.dataset.labels.target_gene[np.concatenate(sampler._cells_of)])
  assert not used & set(HELD_OUT)
  assert all(not set(t.split("+")) & set(HELD_OUT) for t in sampler.targets)


def test_submission_cells_are_those_of_predict_target_in_order(norman_run, tmp_path):
  """The model runs a target ahead while cells are written: the file still holds exactly the
  cells `predict_target` makes, target after target, from the same generator."""
  from vccjax.experiment import predicted_cells
  from vccjax.predict import submission, trained_run
  exp, params, predict_fn = trained_run.load_trained(str(norman_run))
  counts = {"FOXO4": 37, "KLF1": 12, "SGK1": 25}
  table = pd.DataFrame({"target_gene": list(counts), "n_cells": list(counts.values())})
  genes = list(exp.dataset.gene_names)
  submission.write_submission(exp, predict_fn=predict_fn, params=params, pert_counts=table,
                              genes=genes, out_path=str(tmp_path / "p.h5ad"), n_controls=0,
                              log=lambda *a: None)
  rng = np.random.default_rng(0)
  enc = exp.encode(list(counts))
  expected = [predicted_cells.predict_target(exp, predict_fn=predict_fn, params=params, target=t,
                                             n_cells=n, rng=rng, enc=_row(enc, i)).toarray()
              for i, (t, n) in enumerate(counts.items())]
  np.testing.assert_array_equal(ad.read_h5ad(tmp_path / "p.h5ad").X.toarray(),
                                np.concatenate(expected))


def _row(enc, i):
  return type(enc)(*(a[i:i + 1] for a in enc))
