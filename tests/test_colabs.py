"""The notebooks in colabs/ run headless from top to bottom on tiny settings, without errors.

Parameters are injected as papermill does: a cell placed after the one tagged `parameters`
reassigns them.
"""

import json
import os

import anndata as ad
import nbformat
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from nbclient import NotebookClient

from conftest import REPO, shared
from vccjax.data import synthetic

COLABS = os.path.join(REPO, "colabs")
NOTEBOOKS = ["quickstart.ipynb", "vcc_submission.ipynb", "explore_data.ipynb"]


def run_notebook(name: str, params: dict, *, extra_code: str = "", timeout: int = 300):
  """Executes colabs/`name` with `params` injected; returns the executed notebook.

  `extra_code` runs in a last cell (to hand results to the test). Raises nbclient's
  CellExecutionError on the first cell that fails.
  """
  nb = nbformat.read(os.path.join(COLABS, name), as_version=4)
  index = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
  assert len(index) == 1, f"{name}: exactly one cell must be tagged 'parameters'"
  declared = nb.cells[index[0]].source
  for key in params:
    assert f"{key} = " in declared, f"{name} has no parameter {key}"
  injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
  injected.metadata["tags"] = ["injected-parameters"]
  nb.cells.insert(index[0] + 1, injected)
  if extra_code:
    nb.cells.append(nbformat.v4.new_code_cell(extra_code))
  NotebookClient(nb, timeout=timeout, kernel_name="python3",
                 resources={"metadata": {"path": COLABS}}).execute()
  return nb


def _outputs(nb, output_type=None, mime=None):
  outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  if output_type:
    outs = [o for o in outs if o.output_type == output_type]
  if mime:
    outs = [o for o in outs if mime in o.get("data", {})]
  return outs


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_saved_without_outputs_and_installs_only_on_colab(name):
  nb = nbformat.read(os.path.join(COLABS, name), as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(not c.outputs and c.execution_count is None for c in code)
  assert '"google.colab" in sys.modules' in code[0].source and "pip install" in code[0].source
  assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3


@pytest.mark.slow
def test_quickstart_trains_scores_and_plots(tmp_path):
  workdir = tmp_path / "run"
  nb = run_notebook("quickstart.ipynb", {
      "VARIANT": "tiny", "WORKDIR": str(workdir), "OVERRIDES": {"train.steps": 10}})
  results = json.loads((workdir / "results.json").read_text())
  assert set(results) == {"val", "test"}
  assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == 10
  tables = [o for o in _outputs(nb, mime="text/html") if "overall" in o.data["text/html"]]
  assert tables, "no score table shown"
  # Figures: the training curves and one scatter panel per test target.
  assert len(_outputs(nb, mime="image/png")) >= 2


def _vcc_stand_in(tmp_path, held_out=("SYN00020", "SYN00136")):
  """A tiny synthetic 'challenge': training file without `held_out`, gene list, pert counts."""
  full = tmp_path / "full.h5ad"
  synthetic.write_synthetic(full, n_cells=1_500, n_genes=200, n_targets=10, n_batches=2,
                            median_umi=3_000, seed=0, workers=1)
  adata = ad.read_h5ad(full)
  assert set(held_out) <= set(adata.obs.target_gene)
  adata[~adata.obs.target_gene.isin(held_out)].copy().write_h5ad(tmp_path / "train.h5ad")
  (tmp_path / "genes.csv").write_text("\n".join(adata.var_names) + "\n")
  counts = pd.DataFrame({"target_gene": list(held_out), "n_cells": [40, 25],
                         "median_umi_per_cell": [3000, 3000]})
  counts.to_csv(tmp_path / "pert_counts.csv", index=False)
  return counts


@pytest.mark.slow
def test_vcc_submission_writes_a_valid_prepped_file(tmp_path):
  counts = _vcc_stand_in(tmp_path)
  workdir = tmp_path / "run"
  run_notebook("vcc_submission.ipynb", {
      "TRAINING_H5AD": str(tmp_path / "train.h5ad"), "GENE_NAMES_CSV": str(tmp_path / "genes.csv"),
      "PERT_COUNTS_CSV": str(tmp_path / "pert_counts.csv"), "GO_PATH": "", "VARIANT": "tiny",
      "WORKDIR": str(workdir), "OVERRIDES": {"train.steps": 10}})
  pred = ad.read_h5ad(workdir / "submission.h5ad")
  got = pred.obs.target_gene.value_counts().to_dict()
  assert {t: got.get(t) for t in counts.target_gene} == dict(zip(counts.target_gene,
                                                                 counts.n_cells))
  assert "non-targeting" in got
  x = pred.X.toarray() if hasattr(pred.X, "toarray") else np.asarray(pred.X)
  assert np.isfinite(x).all() and 0 <= x.min() and x.max() < 15
  assert (workdir / "submission.prep.vcc").stat().st_size > 0


def _reference_de_and_knockdown(path):
  """DE gene counts (scipy Wilcoxon + BH over all tests) and knockdown, from anndata directly."""
  adata = ad.read_h5ad(path)
  counts = adata.X.toarray().astype(np.float64)
  totals = counts.sum(1, keepdims=True)
  normalised = counts / totals * np.median(totals)
  log1p = np.log1p(normalised)
  labels = adata.obs.target_gene.astype(str).values
  control = labels == "non-targeting"
  targets = sorted(set(labels[~control]))
  p = np.stack([scipy.stats.mannwhitneyu(log1p[labels == t], log1p[control],
                                         method="asymptotic").pvalue for t in targets])
  adjusted = scipy.stats.false_discovery_control(np.nan_to_num(p, nan=1.0).ravel(), method="bh")
  n_de = dict(zip(targets, (adjusted.reshape(p.shape) < 0.05).sum(1).tolist()))
  column = {g: i for i, g in enumerate(adata.var_names)}
  knockdown = {t: normalised[labels == t, column[t]].mean() / normalised[control, column[t]].mean()
               for t in targets if t in column}
  return n_de, knockdown


@pytest.mark.slow
def test_explore_data_on_real_vcc_cells(tmp_path):
  path = shared("vcc_h1_subset.h5ad")  # 100 cells per group: under the caps, all cells are read
  out = tmp_path / "explored.json"
  nb = run_notebook("explore_data.ipynb", {"DATA_PATH": path}, extra_code=(
      "import json\n"
      f"json.dump({{'n_de': n_de.to_dict(), 'knockdown': knockdown.to_dict()}}, open({str(out)!r}, 'w'))"))
  got = json.loads(out.read_text())
  n_de, knockdown = _reference_de_and_knockdown(path)
  assert set(n_de) == {"MED12", "SRC", "STAT1", "TET1", "TMSB4X"}
  assert got["n_de"] == n_de
  # Of the five targets only TMSB4X is among the subset's 1,000 genes.
  assert set(got["knockdown"]) == set(knockdown) == {"TMSB4X"}
  np.testing.assert_allclose(got["knockdown"]["TMSB4X"], knockdown["TMSB4X"], rtol=1e-3)
  assert knockdown["TMSB4X"] < 0.1, "CRISPRi silences TMSB4X in these cells"
  # Cells per target, knockdown, DE genes, heatmap, PCA.
  assert len(_outputs(nb, mime="image/png")) >= 5
