"""The wanted expression change of inverse design: read from a csv or computed from cells.

Every signature is returned in natural-log fold changes of normalised counts, the unit the models
predict (`vccjax.models.inputs`); a csv in log2 (what DE tools write) is converted on reading.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vccjax.data import io
from vccjax.data import normalize
from vccjax.errors import InputError

GENE_COLUMN, LFC_COLUMN = "gene", "log_fold_change"
LOG_BASES = {"2": math.log(2.0), "e": 1.0}  # natural log of one unit of each base


@dataclasses.dataclass(frozen=True)
class MatchedSignature:
  """A signature restricted to the genes the model predicts.

  Attributes:
    genes: [n] signature genes the model measures, in the model's gene order.
    columns: [n] their positions among the model's output genes.
    wanted: [n] float32 wanted natural-log fold changes.
    missing: signature genes the model does not measure (reported, not scored).
  """
  genes: list[str]
  columns: np.ndarray
  wanted: np.ndarray
  missing: list[str]


def read_signature_csv(path: str, *, log_base: str = "2") -> dict[str, float]:
  """`gene,log_fold_change` csv (header required) -> {gene: natural-log fold change}.

  log_base: "2" (DE tools: DESeq2, scanpy, Seurat) or "e" (natural log, as vccjax predicts).
  """
  if log_base not in LOG_BASES:
    raise InputError("--log-base", f"unknown base {log_base!r}", "use 2 or e")
  if not os.path.exists(path):
    raise InputError(path, "signature file not found", "check the path")
  try:
    table = pd.read_csv(path)
  except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
    raise InputError(path, f"not a readable csv ({type(e).__name__})",
                     f"write a csv with header {GENE_COLUMN},{LFC_COLUMN}") from e
  if GENE_COLUMN not in table.columns or LFC_COLUMN not in table.columns:
    raise InputError(path, f"needs columns '{GENE_COLUMN}' and '{LFC_COLUMN}' (found "
                     f"{list(table.columns)[:6]})",
                     f"rename the columns: header {GENE_COLUMN},{LFC_COLUMN}")
  if table.empty:
    raise InputError(path, "no rows", "one row per gene")
  genes = table[GENE_COLUMN].astype(str).str.strip()
  values = pd.to_numeric(table[LFC_COLUMN], errors="coerce").to_numpy(np.float64)
  bad = np.flatnonzero(~np.isfinite(values))
  if len(bad):
    raise InputError(path, f"row {bad[0] + 2} ({genes.iloc[bad[0]]}): log_fold_change "
                     f"{table[LFC_COLUMN].iloc[bad[0]]!r} is not a finite number",
                     "give a number on every row (drop genes without a fold change)")
  dup = genes[genes.duplicated()]
  if len(dup):
    raise InputError(path, f"gene {dup.iloc[0]!r} appears twice", "one row per gene")
  return dict(zip(genes, (values * LOG_BASES[log_base]).tolist()))


def signature_from_h5ad(path: str, *, control_label: str, pseudocount: float = 1.0,
                        chunk_size: int = 8192) -> dict[str, float]:
  """The change of the non-control cells of a raw-count `.h5ad` against its control cells.

  Natural-log fold change of mean normalised counts (each cell scaled to the file's median total,
  the VCC scaling) with `pseudocount` added to both means, as training targets are computed
  (`PerturbDataset.target_lfc`, there against context-matched controls; here all cells are pooled).

  Args:
    path: `.h5ad` with raw counts in X and obs['target_gene'].
    control_label: the label of control cells in obs['target_gene'].
    pseudocount: the run's `config.data.lfc_pseudocount`.
  Returns:
    {gene: natural-log fold change} over all genes of the file.
  """
  adata = io.read_h5ad(path, backed=True)
  labels = io.read_labels(adata, path=path, control_label=control_label)
  is_control = labels.is_control
  if is_control.all():
    raise InputError(path, f"every cell is a control ('{control_label}')",
                     "add the target cells, or give the right --control-label")
  totals = np.empty(adata.n_obs, np.float64)
  for start, chunk in io.iter_row_chunks(adata, chunk_size):
    if start == 0 and normalize.has_fractional_values(chunk):
      raise InputError(f"{path} X", "values are not integer counts (looks normalised/log1p)",
                       "give raw UMI counts, or a csv signature")
    totals[start:start + chunk.shape[0]] = normalize.cell_totals(chunk)
  target_sum = normalize.median_target_sum(totals)
  sums = np.zeros((2, adata.n_vars))  # row 0: target cells, row 1: controls
  for start, chunk in io.iter_row_chunks(adata, chunk_size):
    rows = slice(start, start + chunk.shape[0])
    scaled = sp.diags(target_sum / np.maximum(totals[rows], 1e-12)) @ chunk
    ctrl = is_control[rows]
    sums[0] += np.asarray(scaled[~ctrl].sum(0)).ravel()
    sums[1] += np.asarray(scaled[ctrl].sum(0)).ravel()
  means = sums / np.array([(~is_control).sum(), is_control.sum()])[:, None]
  lfc = np.log((means[0] + pseudocount) / (means[1] + pseudocount))
  return dict(zip(labels.gene_names.tolist(), lfc.tolist()))


def read_signature(path: str, *, log_base: str, control_label: str, pseudocount: float
                   ) -> dict[str, float]:
  """A csv or h5ad signature (by extension) -> {gene: natural-log fold change}."""
  if path.endswith(".h5ad"):
    return signature_from_h5ad(path, control_label=control_label, pseudocount=pseudocount)
  return read_signature_csv(path, log_base=log_base)


def match_signature(signature: dict[str, float], gene_names, *, where: str = "signature"
                    ) -> MatchedSignature:
  """The signature on the model's output genes; InputError when no gene is shared."""
  if not signature:
    raise InputError(where, "empty signature", "give at least one gene with a fold change")
  index = {g: i for i, g in enumerate(map(str, gene_names))}
  missing = [g for g in signature if g not in index]
  shared = sorted((g for g in signature if g in index), key=index.get)
  if not shared:
    raise InputError(where, f"none of its {len(signature)} genes is measured by the model "
                     f"(e.g. {missing[:3]}; the model's genes are e.g. {list(index)[:3]})",
                     "use the gene symbols of the training data")
  wanted = np.array([signature[g] for g in shared], np.float32)
  if not np.isfinite(wanted).all():
    bad = shared[int(np.flatnonzero(~np.isfinite(wanted))[0])]
    raise InputError(where, f"fold change of {bad!r} is not finite", "give finite numbers")
  if not np.any(wanted):
    raise InputError(where, f"every fold change of its {len(shared)} measured genes is 0",
                     "give a signature with some change")
  return MatchedSignature(genes=shared, columns=np.array([index[g] for g in shared], np.int32),
                          wanted=wanted, missing=missing)
