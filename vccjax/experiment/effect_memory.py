"""The memory of measured effects: every training perturbation's pseudobulk log fold changes.

Models that learn from the measured effects of related perturbations (`nearest`, `nearest_k`,
the set transformer with `memory=True`) read it: an entry's value is its measured fold changes,
its key its pooled gene features, and each queried target gene gets its IDF-weighted GO cosine
with every entry (`vccjax.data.go_idf`). A perturbation never reads its own entry. An entry that
is a gene's own single perturbation (in any cell type) has similarity exactly 1 with that gene,
GO annotated or not: a double's measured singles, the same target in another cell type.

GO cosines are capped just below 1 (`GO_MAX`), so similarity 1 means the gene's own single.

An entry's own target genes carry its knockdown, which says nothing about another target's
genes: there the value is the mean of the other entries (the target's own change is modelled
separately, as a knockdown).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vccjax.data import go_idf as go_idf_lib
from vccjax.data import targets as targets_lib


GO_MAX = 0.9999  # the largest GO cosine: two genes with the same annotations are not one gene


@dataclasses.dataclass(frozen=True)
class EffectMemory:
  """Attributes:
    targets: [M] the training perturbations held.
    lfc: [M, G] their measured log fold changes (own target genes replaced, see module doc).
    keys: [M, F] their pooled gene features.
    go: the GO IDF table (None: no GO file, every similarity is 0).
  """
  targets: list[str]
  lfc: np.ndarray
  keys: np.ndarray
  go: go_idf_lib.GoIdf | None

  @property
  def size(self) -> int:
    return len(self.targets)


def without_own_genes(lfc: np.ndarray, own_columns: list[list[int]]) -> np.ndarray:
  """[M, G] copy of `lfc` where entry i's own columns hold the mean of the other entries there.

  own_columns: per entry, the output columns of its measured target genes.
  """
  out = np.array(lfc, np.float32, copy=True)
  m = len(lfc)
  for i, cols in enumerate(own_columns):
    for c in cols:
      out[i, c] = (lfc[:, c].sum() - lfc[i, c]) / max(m - 1, 1) if m > 1 else 0.0
  return out


def build(*, targets: list[str], lfc: np.ndarray, keys: np.ndarray, gene_names,
          go: go_idf_lib.GoIdf | None) -> EffectMemory:
  """The memory of `targets` ([M]) with measured `lfc` [M, G] and pooled features `keys`."""
  index = {g: i for i, g in enumerate(map(str, gene_names))}
  own = [[index[g] for g in targets_lib.genes_of(t) if g in index] for t in targets]
  return EffectMemory(list(targets), without_own_genes(lfc, own), np.asarray(keys, np.float32),
                      go)


def read_fields(memory: EffectMemory, targets: list[str], *, max_genes: int):
  """(memory_sim [T, K, M], memory_mask [T, M]) of each target: GO similarity of each of its
  (up to K) genes with every entry (1 with the gene's own single, see the module doc), and
  which entries it may read (all but its own)."""
  t, m = len(targets), memory.size
  sim = np.zeros((t, max_genes, m), np.float32)
  slots = [(i, j, g) for i, target in enumerate(targets)
           for j, g in enumerate(targets_lib.genes_of(target)[:max_genes])]
  entry_sets = [targets_lib.genes_of(e) for e in memory.targets]
  if memory.go is not None and m and t:
    values = memory.go.similarity([[g] for _, _, g in slots], entry_sets)
    for (i, j, _), row in zip(slots, values):
      sim[i, j] = np.minimum(row, GO_MAX)
  singles = {}
  for k, genes in enumerate(entry_sets):
    if len(genes) == 1:
      singles.setdefault(genes[0], []).append(k)
  for i, j, g in slots:
    sim[i, j, singles.get(g, [])] = 1.0
  own = {e: k for k, e in enumerate(memory.targets)}
  mask = np.ones((t, m), bool)
  for i, target in enumerate(targets):
    if target in own:
      mask[i, own[target]] = False
  return sim, mask
