"""The memory of measured effects: own target genes replaced, own entry never readable."""

import numpy as np

from vccjax.data import go_idf
from vccjax.experiment import effect_memory


def test_own_gene_columns_hold_the_other_entries_mean():
  lfc = np.array([[-2.0, 0.1, 0.3], [0.4, -3.0, 0.2], [0.6, 0.5, 0.1]])
  out = effect_memory.without_own_genes(lfc, [[0], [1], []])
  np.testing.assert_allclose(out[0, 0], (0.4 + 0.6) / 2)
  np.testing.assert_allclose(out[1, 1], (0.1 + 0.5) / 2)
  np.testing.assert_allclose(out[2], lfc[2])
  np.testing.assert_allclose(out[0, 1:], lfc[0, 1:])


def test_read_fields_similarity_per_gene_and_own_entry_masked():
  go = go_idf.GoIdf.from_pairs(["A", "A", "B", "B", "C"], ["t1", "t2", "t1", "t2", "t3"])
  memory = effect_memory.build(targets=["A", "C"], lfc=np.zeros((2, 4)), keys=np.zeros((2, 3)),
                               gene_names=["A", "B", "C", "X"], go=go)
  sim, mask = effect_memory.read_fields(memory, ["A", "B+C", "X"], max_genes=2)
  assert sim.shape == (3, 2, 2) and mask.shape == (3, 2)
  np.testing.assert_allclose(sim[0, 0], [1.0, 0.0], atol=1e-6)  # A is A; shares nothing with C
  # B has A's terms: GO cosine 1, kept below a gene's own single
  np.testing.assert_allclose(sim[1, 0], [effect_memory.GO_MAX, 0.0], atol=1e-6)
  assert sim[1, 0, 0] < 1.0 and sim[0, 0, 0] == 1.0
  np.testing.assert_allclose(sim[1, 1], [0.0, 1.0], atol=1e-6)  # C
  assert not sim[2].any() and not sim[0, 1].any()  # X unannotated; A has no second gene
  np.testing.assert_array_equal(mask, [[False, True], [True, True], [True, True]])


def test_a_genes_own_single_reads_as_similarity_one_annotated_or_not():
  go = go_idf.GoIdf.from_pairs(["A", "B"], ["t1", "t2"])
  memory = effect_memory.build(targets=["X", "A", "A+X", "B@U87MG"], lfc=np.zeros((4, 3)),
                               keys=np.zeros((4, 2)), gene_names=["A", "B", "X"], go=go)
  sim, mask = effect_memory.read_fields(memory, ["A+X", "B@T98G", "X"], max_genes=2)
  np.testing.assert_allclose(sim[0, 0, :2], [0.0, 1.0])  # A reads A (GO cosine 1)
  assert sim[0, 1, 0] == 1.0  # X has no GO term but reads its own single X
  assert sim[0, 1, 1] == 0.0 and sim[0, 1, 2] == 0.0  # a double is no gene's own single
  assert sim[1, 0, 3] == 1.0  # B in another cell type
  np.testing.assert_array_equal(mask[0], [True, True, False, True])  # never its own entry
  assert not mask[2, 0]
