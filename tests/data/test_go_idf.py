"""GO IDF similarity: IDF as log(#annotated genes / #genes with the term), cosine of IDF vectors."""

import numpy as np

from vccjax.data import go_idf

# 5 annotated genes; term T_common on 4 of them, T_rare on 2, T_mid on 3.
PAIRS = [("A", "T_common"), ("A", "T_rare"), ("B", "T_common"), ("B", "T_rare"),
         ("C", "T_common"), ("C", "T_mid"), ("D", "T_common"), ("D", "T_mid"),
         ("E", "T_mid"), ("E", "T_mid")]  # a duplicate pair counts once


def _table():
  genes, terms = zip(*PAIRS)
  return go_idf.GoIdf.from_pairs(genes, terms)


def test_idf_as_stated():
  table = _table()
  expected = {"T_common": np.log(5 / 4), "T_mid": np.log(5 / 3), "T_rare": np.log(5 / 2)}
  got = dict(zip(sorted(expected), table.idf))
  for term, value in expected.items():
    np.testing.assert_allclose(got[term], value)


def test_similarity_matches_direct_cosine():
  table = _table()
  idf = {"T_common": np.log(5 / 4), "T_mid": np.log(5 / 3), "T_rare": np.log(5 / 2)}
  terms = {g: {t for gg, t in PAIRS if gg == g} for g in "ABCDE"}
  order = sorted(idf)

  def vec(genes):
    have = set().union(*(terms.get(g, set()) for g in genes))
    return np.array([idf[t] if t in have else 0.0 for t in order])

  queries, memory = [["A"], ["C"], ["ZZZ"]], [["B"], ["D"], ["E"], ["A", "E"]]
  got = table.similarity(queries, memory)
  for i, q in enumerate(queries):
    for j, m in enumerate(memory):
      a, b = vec(q), vec(m)
      denom = np.linalg.norm(a) * np.linalg.norm(b)
      np.testing.assert_allclose(got[i, j], a @ b / denom if denom else 0.0, rtol=1e-6,
                                 atol=1e-7)
  # A shares its rare term with B: B is its most similar gene, above D (common term only).
  assert got[0].argmax() == 0 and got[0, 0] > got[0, 1]
  assert not got[2].any()  # an unannotated gene is similar to nothing
