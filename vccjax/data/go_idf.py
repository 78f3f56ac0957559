"""How alike two perturbations are by their genes' GO annotations: IDF-weighted cosine.

Each gene set (the genes of a perturbation) is the vector over GO terms with entry
idf(term) = log(#annotated genes / #genes with the term) for every term annotated to one of its
genes (0 otherwise): a rare shared term counts more than a generic one. Two sets' similarity is
the cosine of their vectors; a set with no annotated gene has similarity 0 with everything.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vccjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class GoIdf:
  """The annotation table as a sparse gene x term matrix plus each term's IDF.

  Attributes:
    genes: annotated gene symbols (rows).
    annotations: [genes, terms] CSR of 0/1.
    idf: [terms] log(#annotated genes / #genes with the term).
  """
  genes: list[str]
  annotations: sp.csr_matrix
  idf: np.ndarray

  @classmethod
  def from_pairs(cls, genes, terms) -> "GoIdf":
    """From parallel arrays of (gene, term) annotation pairs (duplicates ignored)."""
    frame = pd.DataFrame({"gene": np.asarray(genes, str), "term": np.asarray(terms, str)})
    frame = frame.drop_duplicates()
    gene_names, gi = np.unique(frame.gene.to_numpy(), return_inverse=True)
    term_names, ti = np.unique(frame.term.to_numpy(), return_inverse=True)
    annotations = sp.csr_matrix((np.ones(len(gi)), (gi, ti)),
                                shape=(len(gene_names), len(term_names)))
    idf = np.log(len(gene_names) / np.bincount(ti, minlength=len(term_names)))
    return cls(gene_names.tolist(), annotations, idf)

  def set_vectors(self, gene_sets: list[list[str]]) -> sp.csr_matrix:
    """[sets, terms] IDF vectors of gene sets (a term shared by two genes of a set counts once)."""
    index = {g: i for i, g in enumerate(self.genes)}
    rows, cols = [], []
    for s, genes in enumerate(gene_sets):
      for g in genes:
        if g in index:
          rows.append(s)
          cols.append(index[g])
    member = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                           shape=(len(gene_sets), len(self.genes)))
    terms = (member @ self.annotations).minimum(1.0)
    return sp.csr_matrix(terms.multiply(self.idf[None, :]))

  def similarity(self, queries: list[list[str]], memory: list[list[str]]) -> np.ndarray:
    """[queries, memory] IDF-weighted cosine of each query gene set with each memory gene set."""
    q, m = self.set_vectors(queries), self.set_vectors(memory)

    def normalised(v):
      norms = np.sqrt(np.asarray(v.multiply(v).sum(1)).ravel())
      return sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ v

    return np.asarray((normalised(q) @ normalised(m).T).todense(), np.float32)


def read_go_idf(path: str) -> GoIdf:
  """The `gene_symbol<TAB>go_id` annotation file (tsv, optionally .gz, with a header)."""
  if not os.path.exists(path):
    raise InputError(path, "GO annotation file not found", "check config.features.go_path")
  table = pd.read_csv(path, sep="\t", dtype=str).dropna()
  if table.shape[1] < 2:
    raise InputError(path, "expected two columns gene_symbol<TAB>go_id", "fix the file format")
  return GoIdf.from_pairs(table.iloc[:, 0].to_numpy(), table.iloc[:, 1].to_numpy())
