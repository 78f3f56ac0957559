"""How a perturbation label names its genes.

`A` is one target gene, `A+B` a combination. `A@T98G` is A perturbed in one cell type: a file
relabelled this way (`label_by_cell_type`) holds a cell type out like an unseen target, while
the model still knows that `A@T98G` knocks down gene A.
"""

from __future__ import annotations

import numpy as np

CELL_TYPE_SEP = "@"


def perturbation_of(target: str) -> str:
  """A label without its cell type: 'A+B@T98G' -> 'A+B'."""
  return target.partition(CELL_TYPE_SEP)[0]


def genes_of(target: str) -> list[str]:
  """The perturbed genes of a label: 'A+B@T98G' -> ['A', 'B']."""
  return perturbation_of(target).split("+")


def cell_type_of(target: str) -> str | None:
  """The cell type a label is tied to ('A@T98G' -> 'T98G'), None for plain labels."""
  _, sep, cell_type = target.partition(CELL_TYPE_SEP)
  return cell_type if sep else None


def label_by_cell_type(target_gene: np.ndarray, cell_type: np.ndarray, *,
                       control_label: str) -> np.ndarray:
  """Labels every perturbed cell 'TARGET@CELLTYPE'; controls keep their label."""
  target_gene = np.asarray(target_gene).astype(str)
  labelled = np.char.add(np.char.add(target_gene, CELL_TYPE_SEP), np.asarray(cell_type).astype(str))
  return np.where(target_gene == control_label, target_gene, labelled)


def write_labelled_by_cell_type(src: str, dst: str, *, control_label: str) -> list[str]:
  """Copies a VCC-layout file with perturbed cells relabelled 'TARGET@CELLTYPE'.

  Returns the file's cell types. Needs `obs['cell_type']` (InputError naming the fix if absent).
  """
  from vccjax.data import io, writer
  from vccjax.errors import InputError
  adata = io.read_h5ad(src)
  labels = io.read_labels(adata, path=src, control_label=control_label)
  if labels.cell_type is None:
    raise InputError(src, "obs has no 'cell_type' column", "add the cell type of each cell")
  adata.obs["target_gene"] = label_by_cell_type(labels.target_gene, labels.cell_type,
                                                control_label=control_label)
  writer.write_h5ad_atomic(adata, dst)
  return sorted(set(labels.cell_type.tolist()))
