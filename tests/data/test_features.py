"""Perturbation features: control PCA, GO embedding, vector files, explicit missing genes."""

import numpy as np
import pytest

from conftest import shared
from vccjax.data import features
from vccjax.errors import InputError


def test_control_pca_loadings_reconstruct_gene_covariance():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(500, 3))
  w = rng.normal(size=(3, 10))
  x = z @ w + 0.01 * rng.normal(size=(500, 10))
  table = features.control_pca(control_expr=x, gene_names=[f"g{i}" for i in range(10)], dim=3)
  cov = np.cov(x, rowvar=False)
  np.testing.assert_allclose(table.matrix @ table.matrix.T, cov, rtol=0.02, atol=0.02)


def test_control_pca_equals_the_svd_of_the_cells_up_to_sign_and_signs_are_fixed():
  rng = np.random.default_rng(1)
  x = (rng.normal(size=(300, 4)) * [5, 3, 2, 1]) @ rng.normal(size=(4, 12)) + rng.normal(
      size=(300, 12)) * 0.1
  table = features.control_pca(control_expr=x, gene_names=[f"g{i}" for i in range(12)], dim=4)
  centred = x - x.mean(0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)
  svd = vt[:4].T * (s[:4] / np.sqrt(299))
  np.testing.assert_allclose(np.abs(table.matrix), np.abs(svd), rtol=1e-4, atol=1e-5)
  largest = table.matrix[np.abs(table.matrix).argmax(0), np.arange(4)]
  assert (largest > 0).all()
  flipped = features.control_pca(control_expr=-x, gene_names=table.genes, dim=4)
  np.testing.assert_allclose(flipped.matrix, table.matrix, rtol=1e-4, atol=1e-5)


def test_go_embedding_places_co_annotated_genes_together():
  go = features.read_go_table(shared("go_bp_annotations.tsv.gz"), dim=64)
  index = {g: i for i, g in enumerate(go.genes)}
  unit = go.matrix / np.linalg.norm(go.matrix, axis=1, keepdims=True)
  cos = lambda a, b: float(unit[index[a]] @ unit[index[b]])
  # Ribosomal proteins share their annotations; a ribosomal protein and a kinase do not.
  assert cos("RPL11", "RPS19") > cos("RPL11", "MAPK1") + 0.3


def test_vector_files_npz_and_csv(tmp_path):
  esm = features.read_vector_file(shared("vcc_train_targets_esm2.npz"), dim=16)
  assert esm.matrix.shape == (150, 16)
  rep = features.read_vector_file(shared("replogle22_k562_effects.npz"))
  assert rep.matrix.shape[0] == len(rep.genes) and rep.matrix.shape[1] == 300
  csv = tmp_path / "emb.csv"
  csv.write_text("gene,a,b\nTP53,1,2\nMYC,3,4\n")
  table = features.read_vector_file(str(csv))
  assert table.genes == ["MYC", "TP53"] and table.matrix.tolist() == [[3, 4], [1, 2]]
  bad = tmp_path / "bad.npz"
  np.savez(bad, x=np.zeros(3))
  with pytest.raises(InputError, match="genes/embeddings"):
    features.read_vector_file(str(bad))


def test_combine_flags_presence_and_missing_genes_are_explicit():
  a = features.GeneTable("a", ["G1", "G2", "G3"], np.arange(6, dtype=np.float32).reshape(3, 2))
  b = features.GeneTable("b", ["G2"], np.ones((1, 4), np.float32))
  f = features.combine([a, b], ["G1", "G2", "NEW"])
  assert f.matrix.shape == (3, 2 + 4 + 2)
  np.testing.assert_array_equal(f.present, [[1, 0], [1, 1], [0, 0]])
  assert f.coverage(["G1", "G2", "G1+G2"]) == {"G1": ["a"], "G2": ["a", "b"], "G1+G2": ["a"]}
  assert f.rows("G1+G2") == [0, 1]
  with pytest.raises(InputError, match="no perturbation features for gene 'NEW'"):
    f.rows("NEW")
  assert f.rows("NEW", allow_missing=True) == [2]
  assert f.featureless(["G1", "NEW"]) == ["NEW"]
  # Normalisation depends on the source table, not on which genes are requested.
  np.testing.assert_array_equal(features.combine([a, b], ["G2"]).matrix[0], f.matrix[1])
