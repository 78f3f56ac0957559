"""Combining screens of different cell types into one file (`vccjax.data.combine`)."""

import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vccjax.data.combine import combine_screens
from vccjax.errors import InputError


def _screen(path, *, genes, targets, cell_type=None, seed=0):
  rng = np.random.default_rng(seed)
  obs = {"target_gene": targets}
  if cell_type is not None:
    obs["cell_type"] = cell_type
  x = sp.csr_matrix(rng.poisson(2.0, (len(targets), len(genes))).astype(np.float32))
  ad.AnnData(X=x, obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(len(targets))]),
             var=pd.DataFrame(index=genes)).write_h5ad(path)
  return x.toarray()


def test_shared_genes_cell_types_and_counts_are_kept(tmp_path):
  a = _screen(tmp_path / "a.h5ad", genes=["G1", "G2", "G3"],
              targets=["non-targeting", "G1", "G2", "G2"])
  b = _screen(tmp_path / "b.h5ad", genes=["G3", "G1", "G9"],
              targets=["non-targeting", "G1", "G3", "non-targeting", "G1"],
              cell_type=["U", "U", "U", "V", "V"], seed=1)
  out = tmp_path / "ab.h5ad"
  combined = combine_screens([str(tmp_path / "a.h5ad"), str(tmp_path / "b.h5ad") + "@U"],
                             str(out), shared_targets=True)
  back = ad.read_h5ad(out)
  assert list(back.var_names) == ["G1", "G3"]  # shared genes, the first file's order
  # File b: cell type U only, and its G3 perturbation is not one of file a's.
  assert back.obs["target_gene"].tolist() == ["non-targeting", "G1", "G2", "G2",
                                              "non-targeting", "G1"]
  assert back.obs["cell_type"].tolist() == ["a"] * 4 + ["U"] * 2
  assert back.obs["batch"].nunique() == 2
  np.testing.assert_array_equal(back.X.toarray(), np.vstack([a[:, [0, 2]], b[:2][:, [1, 0]]]))
  assert combined.n_obs == 6


def test_unknown_cell_type_is_a_clear_error(tmp_path):
  _screen(tmp_path / "a.h5ad", genes=["G1"], targets=["non-targeting", "G1"])
  with pytest.raises(InputError, match="no cells of cell type 'X'"):
    combine_screens([str(tmp_path / "a.h5ad"), str(tmp_path / "a.h5ad") + "@X"],
                    str(tmp_path / "out.h5ad"))


def test_cli_prints_cells_per_cell_type(tmp_path):
  _screen(tmp_path / "a.h5ad", genes=["G1", "G2"], targets=["non-targeting", "G1"])
  _screen(tmp_path / "b.h5ad", genes=["G1", "G2"], targets=["non-targeting", "G2"],
          cell_type=["K", "K"])
  run = subprocess.run([sys.executable, "-m", "vccjax.data.combine", "--out",
                        str(tmp_path / "ab.h5ad"), str(tmp_path / "a.h5ad"),
                        str(tmp_path / "b.h5ad")], capture_output=True, text=True)
  assert run.returncode == 0, run.stderr
  assert "4 cells x 2 genes" in run.stdout and "K" in run.stdout
