"""Tests of `vccjax.data.validate`: each bad-file case on small files built here, the real VCC
subset as the good case, the CLI's one-line errors, and cell-eval prep as the reference for what
a submission must not be."""

import os
import subprocess
import sys

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vccjax.data.validate import MAX_SUBMISSION_CELLS, validate_file
from vccjax.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "..", "shared", "data")
VCC_SUBSET = os.path.join(DATA, "vcc_h1_subset.h5ad")
VCC_GENES = os.path.join(DATA, "vcc_gene_names.csv")
CTRL = "non-targeting"
GENES = ["G0", "G1", "G2", "G3"]
TARGETS = [CTRL, CTRL, "A", "A", "B", "B"]
COUNTS = np.array([[0, 1, 2, 0], [3, 0, 0, 1], [1, 1, 0, 0],
                   [0, 2, 5, 1], [4, 0, 1, 0], [0, 0, 1, 7]], np.float32)

needs_data = pytest.mark.skipif(not os.path.exists(VCC_SUBSET), reason="no ../shared/data")


def write(path, x=COUNTS, *, targets=TARGETS, genes=GENES, obs=None, sparse=True):
  """Writes a small VCC-layout file: x [cells, genes], one target per cell."""
  obs = pd.DataFrame(obs if obs is not None else {"target_gene": targets},
                     index=[f"cell{i}" for i in range(x.shape[0])])
  var = pd.DataFrame(index=pd.Index(genes, dtype=str))
  x = sp.csr_matrix(x, dtype=np.float32) if sparse else np.asarray(x, np.float32)
  ad.AnnData(X=x, obs=obs, var=var).write_h5ad(path)
  return str(path)


def write_genes(path, genes=GENES):
  pd.Series(genes).to_csv(path, header=False, index=False)
  return str(path)


def log1p_of(counts):
  """VCC scaling by NumPy: each cell to the median total, then log1p."""
  totals = counts.sum(axis=1, keepdims=True)
  return np.log1p(counts / totals * np.median(totals)).astype(np.float32)


def assert_rejects(path, match, **kwargs):
  with pytest.raises(InputError, match=match) as info:
    validate_file(path, **kwargs)
  assert info.value.where == path and info.value.fix  # Names the file and says how to fix it.
  return info.value


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "vccjax.data.validate", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=60)


# The command line.


@needs_data
def test_cli_accepts_real_vcc_subset_and_reports_gene_list():
  out = run_cli(os.path.join("..", "shared", "data", "vcc_h1_subset.h5ad"),
                "--genes", os.path.join("..", "shared", "data", "vcc_gene_names.csv"))
  assert out.returncode == 0, out.stderr
  assert "1,000 of the 18,080 listed genes are present, in order" in out.stdout
  assert "cells: 600 (100 controls" in out.stdout
  assert "raw counts" in out.stdout and "batches: 48" in out.stdout
  assert "Traceback" not in out.stderr


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
@pytest.mark.parametrize("kind", ["no_target_column", "duplicate_genes", "truncated", "empty"])
def test_cli_bad_file_exits_1_with_one_line(tmp_path, kind):
  path = str(tmp_path / "bad.h5ad")
  if kind == "no_target_column":
    write(path, obs={"perturbation": TARGETS})
  elif kind == "duplicate_genes":  # anndata's own multi-line warning must not reach stderr.
    write(path, genes=["G0", "G1", "G1", "G3"])
  elif kind == "truncated":
    if not os.path.exists(VCC_SUBSET):
      pytest.skip("no ../shared/data")
    data = open(VCC_SUBSET, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
  else:
    open(path, "wb").close()
  out = run_cli(path)
  assert out.returncode == 1
  assert out.stdout == ""
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr
  assert lines[0].startswith(f"error: {path}: ") and "(fix: " in lines[0]
  assert "Traceback" not in out.stderr


# Good files.


@needs_data
def test_real_subset_summary_matches_anndata_in_memory_backed_and_chunked():
  adata = ad.read_h5ad(VCC_SUBSET)
  summary = validate_file(VCC_SUBSET)
  assert (summary.n_cells, summary.n_genes, summary.scale) == (600, 1000, "counts")
  assert summary.n_control == int((adata.obs.target_gene == CTRL).sum())
  expected = adata.obs.target_gene[adata.obs.target_gene != CTRL].astype(str).value_counts()
  assert summary.target_counts == expected.to_dict()
  assert summary.max_value == adata.X.max()
  assert summary.n_empty_cells == int((adata.X.getnnz(axis=1) == 0).sum())
  assert summary.n_batches == adata.obs.batch.nunique() and summary.cell_types == ("H1",)
  backed = validate_file(VCC_SUBSET, backed=True, chunk_size=7)
  assert backed.backed and backed == type(summary)(**{**vars(summary), "backed": True})


def test_submission_accepts_counts_and_log1p(tmp_path):
  counts = write(tmp_path / "counts.h5ad")
  log1p = write(tmp_path / "log1p.h5ad", log1p_of(COUNTS))
  assert validate_file(counts, role="submission").scale == "counts"
  summary = validate_file(log1p, role="submission")
  assert summary.scale == "log1p" and summary.max_value == pytest.approx(log1p_of(COUNTS).max())
  assert "log1p" in "\n".join(summary.lines())


def test_dense_x_and_empty_cells_are_handled(tmp_path):
  x = COUNTS.copy()
  x[3] = 0
  summary = validate_file(write(tmp_path / "d.h5ad", x, sparse=False), chunk_size=2)
  assert summary.n_empty_cells == 1 and summary.scale == "counts"


def test_many_targets_are_summarised_compactly(tmp_path):
  targets = [CTRL] * 3 + [f"T{i:02d}" for i in range(40) for _ in range(1 + i % 3)]
  x = np.ones((len(targets), 4), np.float32)
  summary = validate_file(write(tmp_path / "many.h5ad", x, targets=targets))
  line = next(s for s in summary.lines() if "targets:" in s)
  assert line.startswith("  targets: 40 (1-3 cells each") and "..." in line
  assert sum(f"T{i:02d}" in line for i in range(40)) == 6


# Labels.


def test_missing_target_gene_column(tmp_path):
  path = write(tmp_path / "f.h5ad", obs={"perturbation": TARGETS})
  assert_rejects(path, "no 'target_gene' column")


def test_no_control_cells(tmp_path):
  path = write(tmp_path / "f.h5ad", targets=["A", "A", "A", "B", "B", "B"])
  assert_rejects(path, "no control cells labelled 'non-targeting'")
  assert validate_file(path, control_label="A").n_control == 3  # --control-label fixes it.


def test_cells_without_target_label(tmp_path):
  path = write(tmp_path / "f.h5ad", targets=[CTRL, CTRL, "A", None, "B", "B"])
  assert_rejects(path, r"1 cells have no obs\['target_gene'\] label \(first: row 3")


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_duplicate_gene_names(tmp_path):
  assert_rejects(write(tmp_path / "f.h5ad", genes=["G0", "G1", "G1", "G3"]), "duplicate gene")


# Values and scales.


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_infinite_values(tmp_path, value):
  x = COUNTS.copy()
  x[4, 2] = value
  assert_rejects(write(tmp_path / "f.h5ad", x), r"NaN or infinite values \(first: row 4")


@pytest.mark.parametrize("role", ["train", "submission"])
def test_negative_values(tmp_path, role):
  x = log1p_of(COUNTS) if role == "submission" else COUNTS.copy()
  x[2, 1] = -0.5
  assert_rejects(write(tmp_path / "f.h5ad", x), r"negative values, e.g. -0.5 \(row 2", role=role)


def test_all_zero_matrix(tmp_path):
  assert_rejects(write(tmp_path / "f.h5ad", np.zeros((6, 4))), "only zeros")


@pytest.mark.parametrize("role", ["train", "truth"])
def test_log1p_where_counts_expected(tmp_path, role):
  path = write(tmp_path / "f.h5ad", log1p_of(COUNTS))
  assert_rejects(path, "fractional values.*not raw counts", role=role)
  assert validate_file(path, role=role, expect="log1p").scale == "log1p"


def test_counts_where_log1p_expected(tmp_path):
  path = write(tmp_path / "f.h5ad")
  assert_rejects(path, "integer counts only", role="submission", expect="log1p")


def test_fractional_values_at_or_above_15(tmp_path):
  x = log1p_of(COUNTS)
  x[5, 3] = 15.25  # Normalised but never log-transformed, say.
  assert_rejects(write(tmp_path / "f.h5ad", x), r"fractional values reach 15.25 >= 15",
                 role="submission")
  x[5, 3] = 14.75  # Just inside cell-eval's log1p range.
  assert validate_file(write(tmp_path / "ok.h5ad", x), role="submission").scale == "log1p"


@pytest.mark.parametrize("count_value", [40.0, 3.0])
@pytest.mark.parametrize("chunk_size", [None, 1])
def test_mixed_scales(tmp_path, count_value, chunk_size):
  # cell-eval's exploit: raw-count rows among log1p rows. With counts >= 15 cell-eval's max rule
  # notices; with small counts it does not, and would score the count rows as log1p values.
  x = log1p_of(COUNTS)
  x[4] = [count_value, 0, 1, 0]
  path = write(tmp_path / "f.h5ad", x)
  assert_rejects(path, r"mixed scales: row 4 holds integer counts but row 0 holds fractional",
                 role="submission", chunk_size=chunk_size)


# Genes against gene_names.csv.


def test_genes_not_in_list(tmp_path):
  genes = write_genes(tmp_path / "genes.csv", ["G0", "G1", "G3", "G9"])
  path = write(tmp_path / "f.h5ad")
  assert_rejects(path, r"1 of its 4 genes are not in .*genes.csv, e.g. \['G2'\]", genes_path=genes)


def test_genes_out_of_order(tmp_path):
  genes = write_genes(tmp_path / "genes.csv", ["G0", "G2", "G1", "G3", "G4"])
  path = write(tmp_path / "f.h5ad")
  assert_rejects(path, "out of the order .*'G2' \\(list position 1\\) comes after 'G1'",
                 genes_path=genes)


def test_train_subset_in_order_is_reported(tmp_path):
  genes = write_genes(tmp_path / "genes.csv", ["X", "G0", "G1", "Y", "G2", "G3", "Z"])
  summary = validate_file(write(tmp_path / "f.h5ad"), genes_path=genes)
  assert (summary.n_listed_genes, summary.genes_in_order) == (7, True)
  assert "4 of the 7 listed genes are present, in order" in "\n".join(summary.lines())
  assert summary.absent_listed_genes == ("X", "Y", "Z")
  assert ("warning: the file lacks 3 of the 7 listed genes (e.g. X, Y, Z); a submission must "
          "carry every listed gene, so `vccjax.predict` will stop naming them") in summary.lines()[-1]


@pytest.mark.parametrize("role", ["submission", "truth"])
def test_submission_and_truth_need_every_listed_gene(tmp_path, role):
  genes = write_genes(tmp_path / "genes.csv", ["G0", "G1", "G2", "G3", "G4"])
  path = write(tmp_path / "f.h5ad")
  assert_rejects(path, r"lacks 1 of the 5 genes .*\['G4'\]", role=role, genes_path=genes)
  assert validate_file(path, role=role, genes_path=write_genes(tmp_path / "g4.csv")).genes_in_order


def test_empty_gene_list(tmp_path):
  empty = str(tmp_path / "genes.csv")
  open(empty, "w").close()
  with pytest.raises(InputError, match="genes.csv: gene list is empty"):
    validate_file(write(tmp_path / "f.h5ad"), genes_path=empty)


# Submissions against pert_counts and cell-eval's cap.


def write_pert_counts(path, n_cells):
  pd.DataFrame({"target_gene": list(n_cells), "n_cells": list(n_cells.values()),
                "median_umi_per_cell": 1000.0}).to_csv(path, index=False)
  return str(path)


@pytest.mark.parametrize("n_cells,match", [
    ({"A": 2, "B": 2}, None),
    ({"A": 2, "B": 2, "C": 5}, r"1 targets of .*pert.csv have no cells, e.g. \['C'\]"),
    ({"A": 2}, r"1 targets are not in .*pert.csv, e.g. \['B'\]"),
    ({"A": 2, "B": 3}, r"1 targets have a cell count other than n_cells .*B has 2 \(expected 3\)"),
])
def test_submission_cell_counts_against_pert_counts(tmp_path, n_cells, match):
  path = write(tmp_path / "f.h5ad", log1p_of(COUNTS))
  pert = write_pert_counts(tmp_path / "pert.csv", n_cells)
  if match is None:
    summary = validate_file(path, role="submission", pert_counts_path=pert)
    assert summary.target_counts == n_cells and summary.n_control == 2
  else:
    assert_rejects(path, match, role="submission", pert_counts_path=pert)


def test_submission_over_cell_eval_cap(tmp_path):
  n = MAX_SUBMISSION_CELLS + 1
  targets = np.where(np.arange(n) % 2 == 0, CTRL, "A")
  x = sp.csr_matrix((np.ones(n, np.float32), np.zeros(n, np.int32), np.arange(n + 1)), (n, 2))
  path = write(tmp_path / "big.h5ad", x, targets=targets, genes=["G0", "G1"])
  assert_rejects(path, "200,001 cells; cell-eval prep rejects more than 200,000",
                 role="submission")
  assert validate_file(path, role="train").n_cells == n  # The cap is cell-eval's, for submissions.


# Unreadable files.


@needs_data
def test_truncated_real_file(tmp_path):
  data = open(VCC_SUBSET, "rb").read()
  path = str(tmp_path / "half.h5ad")
  open(path, "wb").write(data[:len(data) // 2])
  assert_rejects(path, "unreadable or truncated h5ad")


@pytest.mark.parametrize("backed", [False, True])
def test_damaged_matrix(tmp_path, backed):
  path = write(tmp_path / "f.h5ad")
  with h5py.File(path, "r+") as f:  # indptr now points past the end of X's data.
    indptr = f["X/indptr"][:]
    indptr[-1] += 100
    del f["X/indptr"]
    f["X/indptr"] = indptr
  assert_rejects(path, "X is unreadable", backed=backed)


def test_foreign_file(tmp_path):
  path = str(tmp_path / "table.h5ad")
  pd.DataFrame({"a": [1, 2]}).to_csv(path)
  assert_rejects(path, "unreadable or truncated h5ad")


def test_empty_file(tmp_path):
  path = str(tmp_path / "empty.h5ad")
  open(path, "wb").close()
  assert_rejects(path, r"file is empty \(0 bytes\)")


def test_file_without_cells(tmp_path):
  path = write(tmp_path / "f.h5ad", np.zeros((0, 4)), targets=[])
  assert_rejects(path, "no cells or no genes")


def test_missing_file(tmp_path):
  assert_rejects(str(tmp_path / "nope.h5ad"), "file not found")


# cell-eval prep as the reference: what it rejects, we reject; what it packs, we accept.


@pytest.mark.parametrize("case", [
    "ok", "no_target_column", "no_controls", "extra_gene", "missing_gene", "above_15",
    "negative_log1p"])
def test_agrees_with_cell_eval_prep(tmp_path, case):
  prep = pytest.importorskip("cell_eval._cli._prep")
  assert prep.MAX_CELL_DIM == MAX_SUBMISSION_CELLS
  x, targets, genes, listed = log1p_of(COUNTS), list(TARGETS), list(GENES), list(GENES)
  obs = None
  if case == "no_target_column":
    obs = {"perturbation": targets}
  elif case == "no_controls":
    targets = ["A", "A", "A", "B", "B", "B"]
  elif case == "extra_gene":
    listed = GENES[:3]
  elif case == "missing_gene":
    listed = GENES + ["G4"]
  elif case == "above_15":
    x[0, 0] = 20.5
  elif case == "negative_log1p":
    x[0, 0] = -0.5
  path = write(tmp_path / "f.h5ad", x, targets=targets, obs=obs)
  genes_path = write_genes(tmp_path / "genes.csv", listed)
  listed_genes = pd.read_csv(genes_path, header=None)[0].tolist()
  try:
    prep.strip_anndata(ad.read_h5ad(path), output_path=str(tmp_path / "f.vcc"),
                       genelist=listed_genes, encoding=32)
    prep_ok = True
  except ValueError:
    prep_ok = False
  try:
    validate_file(path, role="submission", genes_path=genes_path)
    ours_ok = True
  except InputError:
    ours_ok = False
  assert (prep_ok, ours_ok) == (case == "ok", case == "ok")
