"""Perturbation features: a vector per gene that reaches targets never seen in training.

Sources (each optional, combined by concatenation with a presence flag per source, so a missing
source is explicit rather than a silent zero):
  * `control_pca`: the gene's loadings on the principal components of control-cell expression
    (co-expression; only genes measured in the panel);
  * `go`: a spectral embedding of Gene Ontology annotations (`gene_symbol<TAB>go_id` tsv[.gz]);
  * `file:PATH`: any gene -> vector file: `.npz` with `genes` + `embeddings` (e.g. ESM2) or
    `target_symbols` + `effects` (e.g. Replogle K562 effects), or a `.csv` whose first column is
    the gene symbol.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from vccjax.data import targets as targets_lib
from vccjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class GeneTable:
  """Vectors for a set of genes from one source. matrix: [genes, dim] float32."""
  name: str
  genes: list[str]
  matrix: np.ndarray


@dataclasses.dataclass(frozen=True)
class PerturbationFeatures:
  """Combined features of the genes a run needs.

  Attributes:
    genes: row names.
    matrix: [genes, dim] float32, per-source blocks (unit RMS) then one presence flag per source.
    sources: names of the sources, in block order.
    present: [genes, sources] bool, which source knew each gene.
  """
  genes: list[str]
  matrix: np.ndarray
  sources: list[str]
  present: np.ndarray

  @functools.cached_property
  def index(self) -> dict[str, int]:
    """Gene -> row (built once)."""
    return {g: i for i, g in enumerate(self.genes)}

  def rows(self, target: str, *, where: str = "target", allow_missing: bool = False) -> list[int]:
    """Feature rows of the gene(s) of a target (`A+B` -> two rows).

    A gene no source knows raises InputError, unless `allow_missing`: then its row holds zeros
    and all-False presence flags, which the model sees as "no information" (callers report it).
    """
    index = self.index
    rows = []
    for gene in targets_lib.genes_of(target):
      i = index.get(gene)
      if (i is None or not self.present[i].any()) and not allow_missing:
        raise InputError(where, f"no perturbation features for gene {gene!r} "
                         f"(sources: {self.sources})",
                         "add a source that covers it (e.g. GO annotations or an embedding file), "
                         "or pass --allow-featureless to predict it as 'no information'")
      rows.append(-1 if i is None else i)
    return rows

  def featureless(self, targets: list[str]) -> list[str]:
    """Targets with a gene that no source knows."""
    return [t for t, sources in self.coverage(targets).items() if not sources]

  def coverage(self, targets: list[str]) -> dict[str, list[str]]:
    """Which sources each target's genes have (for reports)."""
    index = self.index
    return {t: [s for j, s in enumerate(self.sources)
                if all(g in index and self.present[index[g], j]
                       for g in targets_lib.genes_of(t))]
            for t in targets}


def control_pca(*, control_expr: np.ndarray, gene_names, dim: int) -> GeneTable:
  """Loadings of each measured gene on the top `dim` PCs of control cells.

  The PCs are the top eigenvectors of the genes' covariance (a [genes, genes] product and a
  partial symmetric eigensolver: seconds for 22,000 controls x 2,000 genes, where an SVD of the
  cells took minutes), each signed so its largest loading is positive (an SVD's or
  eigensolver's signs depend on the LAPACK build).

  Args:
    control_expr: [cells, genes] log1p expression of control cells.
    gene_names: [genes] names of the columns.
  """
  x = np.asarray(control_expr, np.float64)
  x = x - x.mean(0)
  n_genes = x.shape[1]
  dim = min(dim, min(x.shape) - 1)
  covariance = (x.T @ x) / max(len(x) - 1, 1)
  values, vectors = scipy.linalg.eigh(covariance, subset_by_index=[n_genes - dim, n_genes - 1])
  values, vectors = values[::-1], vectors[:, ::-1]  # largest first
  largest = vectors[np.abs(vectors).argmax(0), np.arange(dim)]
  loadings = vectors * np.where(largest < 0, -1.0, 1.0) * np.sqrt(np.maximum(values, 0.0))
  return GeneTable("control_pca", list(map(str, gene_names)), loadings.astype(np.float32))


def read_go_table(path: str, *, dim: int, min_genes: int = 3, max_genes: int = 1000) -> GeneTable:
  """Spectral embedding of GO annotations: TF-IDF weighted gene x term matrix -> SVD."""
  if not os.path.exists(path):
    raise InputError(path, "GO annotation file not found", "check config.features.go_path")
  table = pd.read_csv(path, sep="\t", dtype=str).dropna()
  if table.shape[1] < 2:
    raise InputError(path, "expected two columns gene_symbol<TAB>go_id", "fix the file format")
  table.columns = ["gene", "term"] + list(table.columns[2:])
  sizes = table.term.map(table.term.value_counts())
  table = table[(sizes >= min_genes) & (sizes <= max_genes)].drop_duplicates(["gene", "term"])
  genes, gi = np.unique(table.gene.to_numpy(), return_inverse=True)
  terms, ti = np.unique(table.term.to_numpy(), return_inverse=True)
  idf = np.log(len(genes) / np.bincount(ti))
  m = sp.csr_matrix((idf[ti], (gi, ti)), shape=(len(genes), len(terms)))
  norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
  m = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m
  u, s, _ = scipy.sparse.linalg.svds(m, k=min(dim, min(m.shape) - 1), random_state=0)
  order = np.argsort(-s)
  return GeneTable("go", genes.tolist(), (u[:, order] * s[order]).astype(np.float32))


def read_vector_file(path: str, *, dim: int | None = None, name: str | None = None) -> GeneTable:
  """A gene -> vector file (npz `genes`/`embeddings` or `target_symbols`/`effects`; or csv)."""
  if not os.path.exists(path):
    raise InputError(path, "embedding file not found", "check the path in config.features")
  if path.endswith(".npz"):
    # Gene names are often saved as object arrays (e.g. the VCC ESM2 file), which need pickle.
    with np.load(path, allow_pickle=True) as z:
      for gkey, vkey in (("genes", "embeddings"), ("target_symbols", "effects")):
        if gkey in z and vkey in z:
          genes, matrix = z[gkey].astype(str).tolist(), z[vkey].astype(np.float32)
          break
      else:
        raise InputError(path, f"npz keys {list(z.keys())} lack genes/embeddings",
                         "save arrays named 'genes' and 'embeddings'")
  else:
    frame = pd.read_csv(path, index_col=0)
    genes, matrix = frame.index.astype(str).tolist(), frame.to_numpy(np.float32)
  if matrix.ndim != 2 or matrix.shape[0] != len(genes):
    raise InputError(path, f"{len(genes)} genes but vectors of shape {matrix.shape}",
                     "one row per gene")
  matrix = np.nan_to_num(matrix)
  genes, first = np.unique(genes, return_index=True)  # keep the first row of a repeated gene
  matrix = matrix[first]
  if dim is not None and matrix.shape[1] > dim:
    centred = matrix - matrix.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    matrix = (u[:, :dim] * s[:dim]).astype(np.float32)
  return GeneTable(name or f"file:{os.path.basename(path)}", genes.tolist(), matrix)


def combine(tables: list[GeneTable], genes: list[str]) -> PerturbationFeatures:
  """Features of `genes` from all tables: unit-RMS blocks (0 where absent) + presence flags."""
  blocks, present = [], np.zeros((len(genes), len(tables)), bool)
  for j, table in enumerate(tables):
    index = {g: i for i, g in enumerate(table.genes)}
    rows = np.array([index.get(g, -1) for g in genes])
    present[:, j] = rows >= 0
    m = table.matrix - table.matrix.mean(0)
    m = m / max(float(np.sqrt((m**2).sum(1).mean())), 1e-12)
    block = np.zeros((len(genes), m.shape[1]), np.float32)
    block[rows >= 0] = m[rows[rows >= 0]]
    blocks.append(block)
  matrix = np.concatenate(blocks + [present.astype(np.float32)], axis=1)
  return PerturbationFeatures(genes=list(genes), matrix=matrix,
                              sources=[t.name for t in tables], present=present)
