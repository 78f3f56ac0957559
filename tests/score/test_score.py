"""The `python -m vccjax.score` command line: the report, the JSON, and one-line input errors."""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import REPO, run_module

sys.path.insert(0, os.path.join(REPO, "tests", "metrics"))
import vcc_screens  # noqa: E402
from vccjax import compilation_cache  # noqa: E402
from vccjax.score import __main__ as score_command  # noqa: E402
from vccjax.score import file_scores  # noqa: E402
from vccjax.data import csr_rows, io  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp("score_cli")
  real = vcc_screens.screen(seed=0, n_perts=4, n_genes=60)
  pred = vcc_screens.screen(seed=1, n_perts=4, n_genes=60, effect_scale=0.5)
  fewer = pred[pred.obs["target_gene"] != "G003"].copy()
  renamed = pred.copy()
  renamed.var_names = ["X" + g for g in renamed.var_names]
  no_controls = real.copy()
  no_controls.obs["target_gene"] = np.where(real.obs["target_gene"] == "non-targeting", "G000",
                                            real.obs["target_gene"])
  pd.DataFrame({"target_gene": ["G000", "G001", "G002", "G003"], "n_cells": [40] * 4}).to_csv(
      d / "counts.csv", index=False)
  paths = {name: vcc_screens.write(a, d / f"{name}.h5ad") for name, a in [
      ("real", real), ("pred", pred), ("fewer", fewer), ("renamed", renamed),
      ("no_controls", no_controls), ("train", vcc_screens.screen(seed=5, n_perts=4, n_genes=60))]}
  paths["counts"] = str(d / "counts.csv")
  paths["dir"] = d
  return paths


def test_report_and_json(files, capsys):
  out = files["dir"] / "scores.json"
  score_command.main(["--pred", files["pred"], "--real", files["real"], "--train", files["train"],
                      "--pert-counts", files["counts"], "--json", str(out),
                      "--fdr", "per_perturbation"])
  text = capsys.readouterr().out
  for word in ("DES", "PDS", "MAE", "model", "baseline", "scaled", "overall score"):
    assert word in text
  scores = json.loads(out.read_text())
  assert set(scores) >= {"model", "baseline", "scaled", "overall", "per_perturbation"}
  assert set(scores["scaled"]) >= {"des", "pds_baseline", "mae_scaled", "overall"}
  rows = scores["per_perturbation"]
  assert [r["perturbation"] for r in rows] == ["G000", "G001", "G002", "G003"]
  assert set(rows[0]) >= {"des", "pds", "mae", "n_true_de", "n_pred_de", "des_baseline"}
  assert 0 <= scores["overall"] <= 100


@pytest.mark.parametrize("pred,real,message", [
    ("fewer", "real", "perturbations differ"),
    ("renamed", "real", "genes differ"),
    ("pred", "no_controls", "no control cells"),
    ("missing", "real", "file not found"),
])
def test_bad_input_is_one_line_and_exit_1(files, capsys, pred, real, message):
  pred_path = files.get(pred, str(files["dir"] / "missing.h5ad"))
  with pytest.raises(SystemExit) as exit_info:
    score_command.main(["--pred", pred_path, "--real", files[real], "--train", files["train"],
                        "--pert-counts", files["counts"]])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and message in err
  assert "Traceback" not in err


def test_command_line_error_in_a_fresh_process(files):
  proc = run_module("vccjax.score", "--pred", files["fewer"], "--real", files["real"],
                    "--baseline", files["pred"], check=False, timeout=300)
  assert proc.returncode == 1
  assert proc.stderr.count("\n") == 1 and "perturbations differ" in proc.stderr


def test_command_keeps_its_compiled_evaluator_for_the_next_run(files, tmp_path):
  cache = tmp_path / "cache"
  env = {"VCCJAX_CACHE_DIR": str(cache), "JAX_COMPILATION_CACHE_DIR": ""}
  args = ("--pred", files["pred"], "--real", files["real"], "--train", files["train"],
          "--pert-counts", files["counts"])
  first = run_module("vccjax.score", *args, env=env, timeout=300)

  def entries():
    return {e.name: e.stat().st_mtime_ns for e in os.scandir(cache / compilation_cache.SUBDIR)}

  written = entries()
  assert any(name.startswith("jit__u_and_p") for name in written)  # the rank-sum test
  second = run_module("vccjax.score", *args, env=env, timeout=300)
  assert second.stdout == first.stdout
  assert entries() == written  # read, not compiled and written again


def test_a_users_own_compilation_cache_is_kept(monkeypatch):
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
  assert compilation_cache.use_for_commands() is None


def test_no_compilation_cache_where_its_directory_cannot_be_made(monkeypatch, tmp_path):
  (tmp_path / "a_file").write_text("")
  monkeypatch.setenv("VCCJAX_CACHE_DIR", str(tmp_path / "a_file" / "cache"))
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
  assert compilation_cache.use_for_commands() is None


@pytest.mark.parametrize("slices", [1, 10**9])  # row-by-row slices, or per-value arrays
@pytest.mark.parametrize("layout", ["csr", "dense", "csr_log1p", "csc"])
def test_chunked_file_summary_equals_the_in_memory_one(tmp_path, monkeypatch, layout, slices):
  # Read in many small pieces (row ranges of a CSR or dense file, blocks of genes of a CSC one);
  # a dense file with all-zero cells takes scanpy's dense median (over non-zero totals), as
  # cell-eval does on the file held in memory. Empty cells first, inside and last; a stored zero.
  from vccjax import metrics
  from vccjax.data import normalize
  from vccjax.metrics import ranksum, scale
  adata = vcc_screens.screen(seed=7, n_perts=3, n_genes=50)
  x = adata.X.toarray()
  x[[0, 1, 2, 40, 41, -1]] = 0  # the median total over all cells is 84, over non-zero ones 85
  if layout == "csr_log1p":
    x = np.log1p(x / 3.0).astype(np.float32)
  stored = (sp.csc_matrix if layout == "csc" else sp.csr_matrix)(x)
  stored.data[5] = 0.0
  adata.X = x if layout == "dense" else stored
  path = vcc_screens.write(adata, tmp_path / "screen.h5ad")
  monkeypatch.setattr(ranksum, "_VALUES_PER_CHUNK", 300)  # ~6 cells a chunk
  monkeypatch.setattr(scale, "_VALUES_PER_READ", 250)
  monkeypatch.setattr(normalize, "_VALUES_PER_SLICE", slices)
  chunked, _ = file_scores.load_summary(path, control_label="non-targeting")
  whole = metrics.summarize(log1p_expr=metrics.to_vcc_log1p(adata.X),
                            targets=adata.obs["target_gene"].to_numpy())
  assert chunked.perturbations == whole.perturbations
  np.testing.assert_array_equal(chunked.pseudobulk, whole.pseudobulk)
  np.testing.assert_array_equal(chunked.p_value, whole.p_value)


def test_training_profile_in_small_chunks_is_the_same(files, monkeypatch):
  # Chunks read into one reused buffer: each must be used up before the next overwrites it.
  assert csr_rows.CsrRows.of(io.read_h5ad(files["train"], backed=True)) is not None
  whole = file_scores.training_profile(files["train"], control_label="non-targeting")
  monkeypatch.setattr(file_scores, "_TRAIN_ROWS_PER_CHUNK", 7)
  chunked = file_scores.training_profile(files["train"], control_label="non-targeting")
  np.testing.assert_array_equal(whole[0], chunked[0])
  assert len(chunked[1]) > len(whole[1])  # the controls come as blocks of rows, not stacked
  np.testing.assert_array_equal(sp.vstack(whole[1]).toarray(), sp.vstack(chunked[1]).toarray())


def test_json_in_a_missing_directory_is_created(files):
  out = files["dir"] / "not" / "yet" / "scores.json"
  score_command.main(["--pred", files["pred"], "--real", files["real"], "--baseline",
                      files["pred"], "--json", str(out)])
  assert json.loads(out.read_text())["overall"] == 0  # the prediction is its own baseline
  assert not os.path.exists(f"{out}.tmp")


def test_json_where_no_directory_can_be_made_fails_before_scoring(files, capsys, monkeypatch):
  blocker = files["dir"] / "a_file"
  blocker.write_text("")
  scored = []
  monkeypatch.setattr(file_scores, "score_files", lambda **kw: scored.append(kw))
  with pytest.raises(SystemExit) as exit_info:
    score_command.main(["--pred", files["pred"], "--real", files["real"], "--baseline",
                        files["pred"], "--json", str(blocker / "scores.json")])
  assert exit_info.value.code == 1 and not scored
  err = capsys.readouterr().err
  assert err.startswith("error: --json") and err.count("\n") == 1 and "(fix: " in err
