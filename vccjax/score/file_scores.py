"""Scoring VCC .h5ad files: each file read, scaled (as cell-eval) and summarised in row chunks.

`score_files` scores a prediction file against the real cells and the cell-mean baseline, built
from a training file and a `pert_counts` table or read from a file `cell-eval baseline` wrote;
`python -m vccjax.score` is its command. `score_predictions` scores several prediction files
against one real file, summarising it and the baseline once.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np
import scipy.sparse as sp

from vccjax import metrics
from vccjax.data import csc_columns, io
from vccjax.score import stored_x
from vccjax.errors import InputError

_TRAIN_ROWS_PER_CHUNK = 8192  # at most; fewer where rows hold many values (`metrics.rows_per_chunk`)


def load_summary(path: str, *, control_label: str, buffers: metrics.ScratchPool | None = None):
  """Reads, scales (as cell-eval) and summarises one file: (FileSummary, gene names).

  Two passes (the scaling needs the file's median total first) over pieces of the file
  (`stored_x`: row ranges of a CSR or dense `X`, blocks of genes of a CSC one), so it is never in
  memory as a whole; each piece is read by the worker thread that ranks it, into reused buffers
  (from `buffers`, which successive calls may share).
  """
  adata = io.read_h5ad(path, backed=True)
  labels = io.read_labels(adata, path=path, control_label=control_label)
  stored = stored_x.direct_reader(adata)
  rows = metrics.rows_per_chunk(io.stored_values_per_row(adata))
  plan = stored_x.scaling_plan(adata, stored, where=f"{path} X", rows=rows, buffers=buffers)
  if stored is not None:  # the rows of a chunk of about _VALUES_PER_CHUNK values once read
    rows = metrics.rows_per_chunk(plan.kept_indptr[-1] / max(adata.n_obs, 1))
  summary = metrics.summarize_chunks(
      chunks=stored_x.ranking_chunks(adata, stored, plan, rows=rows),
      targets=labels.target_gene, n_genes=adata.n_vars, value_bounds=plan.log1p_bounds(),
      control_label=control_label, where=path, buffers=buffers,
      n_values=None if stored is None else int(plan.kept_indptr[-1]))
  return summary, labels.gene_names


def load_summaries(paths: list[str], *, control_label: str) -> list:
  """`load_summary` of several files, one after the other, in the order given.

  One at a time, each on every CPU (its ranking runs on a thread pool): as fast as summarising
  them side by side on 2 cores, at ~60% of the peak memory (3.0 vs 4.9 GiB for two files of the
  VCC validation shape), and a new page of memory is dear on a VM (its first touch is zeroed, ~2 s
  per GiB here).
  """
  buffers = metrics.ScratchPool()  # the second file reuses the first one's buffers
  return [load_summary(path, control_label=control_label, buffers=buffers) for path in paths]


def _check_genes(path, genes, reference, reference_path):
  if len(genes) != len(reference) or not np.array_equal(genes, reference):
    raise InputError(path, f"its {len(genes)} genes differ from the {len(reference)} of "
                     f"{reference_path} (or are in another order)",
                     "write the predictions over the real file's genes, in its order")


def raw_file_scores(*, pred_path: str, real_path: str, control_label: str = io.CONTROL_LABEL,
                    fdr: str = "global",
                    fold_change_clip: float | None = 20.0) -> metrics.EvalResult:
  """DES, PDS and MAE of a prediction file against the real file (`cell-eval run`'s work)."""
  (real, genes), (pred, pred_genes) = load_summaries([real_path, pred_path],
                                                     control_label=control_label)
  _check_genes(pred_path, pred_genes, genes, real_path)
  return metrics.compare(real=real, pred=pred, gene_names=genes, fdr=fdr,
                         fold_change_clip=fold_change_clip)


def training_profile(train_path: str, *, control_label: str, threads: int | None = None):
  """The cell-mean baseline's parts from a training file, streamed in pieces (two passes).

  Each piece is read, scaled and summed per group by a worker thread (`threads`, default: the
  CPUs this process may use) into its reused buffers, at most `threads` pieces ahead of the one
  being added; the pieces' sums are added in the file's order, so the profile does not depend
  on the threads.

  Returns:
    (profile [genes] float32 mean of the groups' log1p pseudobulks, control cells: a list of
    blocks of their rows, [rows, genes] float32 CSR log1p, in the file's order (not stacked: a
    copy of them all, 0.7 GB at the VCC shape), gene names [genes]).
  """
  threads = threads or len(os.sched_getaffinity(0))
  adata = io.read_h5ad(train_path, backed=True)
  labels = io.read_labels(adata, path=train_path, control_label=control_label)
  stored = stored_x.direct_reader(adata)
  buffers = metrics.ScratchPool()
  rows = min(metrics.rows_per_chunk(io.stored_values_per_row(adata)), _TRAIN_ROWS_PER_CHUNK)
  plan = stored_x.scaling_plan(adata, stored, where=f"{train_path} X", rows=rows,
                               buffers=buffers)
  names, group = np.unique(labels.target_gene, return_inverse=True)

  def piece(cells, genes, read):
    with buffers.lease() as scratch:
      log1p = read(scratch)
      part = metrics.group_sums(log1p_expr=log1p, group=group[cells], n_groups=len(names))
      controls = sp.csr_matrix(log1p[np.flatnonzero(labels.is_control[cells])])
    return genes, part, controls

  sums = np.zeros((len(names), adata.n_vars))
  controls = []  # [cells, genes] pieces: row ranges, or blocks of genes of a CSC file
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    readers = ((cells, genes, read) for (cells, genes), read
               in stored_x.scaled_piece_readers(adata, stored, plan, rows=rows))
    for genes, part, control in metrics.in_order(pool, piece, readers, ahead=threads):
      sums[:, genes] += part
      controls.append(control)
  if isinstance(stored, csc_columns.CscColumns):  # blocks of genes: rows only once joined
    controls = [sp.hstack(controls, format="csr")]
  profile = metrics.mean_of_pseudobulks(sums / np.bincount(group)[:, None])
  return profile, controls, labels.gene_names


def baseline_summary(*, train_path=None, pert_counts_path=None, baseline_path=None,
                     control_label: str):
  """Summary of the cell-mean baseline: built from training cells, or read from its file.

  Built, it is ranked in closed form (`metrics.summarize_cell_mean_baseline`): its cells, all
  copies of one profile but for the controls, are never formed.
  """
  if baseline_path is not None:
    return load_summary(baseline_path, control_label=control_label)
  counts = io.read_pert_counts(pert_counts_path)
  profile, controls, genes = training_profile(train_path, control_label=control_label)
  summary = metrics.summarize_cell_mean_baseline(
      profile=profile, control_log1p=controls,
      pert_counts=dict(zip(counts.target_gene, counts.n_cells)), control_label=control_label)
  return summary, genes


def score_files(*, pred_path: str, real_path: str, train_path: str | None = None,
                pert_counts_path: str | None = None, baseline_path: str | None = None,
                fdr: str = "global", control_label: str = io.CONTROL_LABEL,
                fold_change_clip: float | None = 20.0) -> dict:
  """Raw, baseline and scaled scores of a prediction file (see the module docstring).

  Returns:
    {"model", "baseline": {"des", "pds", "mae"}, "scaled": `metrics.scaled_scores`,
     "overall", "per_perturbation": [{perturbation, des, pds, mae, n_true_de, n_pred_de,
     des_baseline, pds_baseline, mae_baseline}], "settings"}.
  """
  return score_predictions(
      [pred_path], real_path=real_path, train_path=train_path, pert_counts_path=pert_counts_path,
      baseline_path=baseline_path, fdr=fdr, control_label=control_label,
      fold_change_clip=fold_change_clip)[0]


def score_predictions(pred_paths: list[str], *, real_path: str, train_path: str | None = None,
                      pert_counts_path: str | None = None, baseline_path: str | None = None,
                      fdr: str = "global", control_label: str = io.CONTROL_LABEL,
                      fold_change_clip: float | None = 20.0) -> list[dict]:
  """`score_files` of several prediction files against one real file: the real file and the
  baseline are summarised (and the baseline scored) once, each prediction file after the other."""
  if (baseline_path is None) == (train_path is None or pert_counts_path is None):
    raise InputError("arguments", "give either --baseline, or --train with --pert-counts",
                     "pass the cell-mean baseline file or the data to build it")
  buffers = metrics.ScratchPool()  # each prediction file reuses the real file's buffers
  real, genes = load_summary(real_path, control_label=control_label, buffers=buffers)
  models = []
  for pred_path in pred_paths:
    pred, pred_genes = load_summary(pred_path, control_label=control_label, buffers=buffers)
    _check_genes(pred_path, pred_genes, genes, real_path)
    models.append(metrics.compare(real=real, pred=pred, gene_names=genes, fdr=fdr,
                                  fold_change_clip=fold_change_clip))
    del pred
  base, base_genes = baseline_summary(train_path=train_path, pert_counts_path=pert_counts_path,
                                      baseline_path=baseline_path, control_label=control_label)
  _check_genes(baseline_path or train_path, base_genes, genes, real_path)
  base_result = metrics.compare(real=real, pred=base, gene_names=genes, fdr=fdr,
                                fold_change_clip=fold_change_clip)
  results = []
  for pred_path, model in zip(pred_paths, models):
    scaled = metrics.scaled_scores(raw=model.means(), baseline=base_result.means())
    table = model.table()
    for row, base_row in zip(table, base_result.table()):
      row.update({f"{m}_baseline": base_row[m] for m in ("des", "pds", "mae")})
    results.append({
        "model": model.means(), "baseline": base_result.means(), "scaled": scaled,
        "overall": scaled["overall"], "per_perturbation": table,
        "settings": {"pred": pred_path, "real": real_path, "train": train_path,
                     "pert_counts": pert_counts_path, "baseline": baseline_path, "fdr": fdr,
                     "control_label": control_label, "fold_change_clip": fold_change_clip}})
  return results
