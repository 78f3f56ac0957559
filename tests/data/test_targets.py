"""Perturbation labels: combinations and cell-type-tied labels for transfer."""

import numpy as np

from conftest import shared
from vccjax.data import io, targets


def test_genes_and_cell_type_of_labels():
  assert targets.genes_of("A") == ["A"]
  assert targets.genes_of("A+B@T98G") == ["A", "B"]
  assert targets.cell_type_of("A+B@T98G") == "T98G" and targets.cell_type_of("A") is None


def test_relabelled_file_ties_perturbed_cells_to_their_cell_type(tmp_path):
  out = tmp_path / "by_type.h5ad"
  cell_types = targets.write_labelled_by_cell_type(shared("mcfaline23_glioma.h5ad"), str(out),
                                                   control_label="non-targeting")
  assert cell_types == ["A172", "T98G", "U87MG"]
  adata = io.read_h5ad(str(out))
  labels = adata.obs.target_gene.astype(str).to_numpy()
  original = io.read_h5ad(shared("mcfaline23_glioma.h5ad")).obs
  ctrl = original.target_gene.astype(str).to_numpy() == "non-targeting"
  assert (labels[ctrl] == "non-targeting").all()
  expected = original.target_gene.astype(str) + "@" + original.cell_type.astype(str)
  np.testing.assert_array_equal(labels[~ctrl], expected.to_numpy()[~ctrl])
