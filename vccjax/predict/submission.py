"""Writing a VCC submission: predicted cells for every listed target plus control cells.

Targets are predicted one at a time and appended to the output file, so 50 targets x ~1,000
cells x 18,080 genes never sit in memory at once. The file is log1p (VCC scaling, < 15), as
cell-eval accepts, written to a temporary file and renamed when complete.
"""

from __future__ import annotations

import time
from concurrent import futures

import numpy as np
import pandas as pd

from vccjax.data import targets as targets_lib
from vccjax.data.writer import H5adWriter
from vccjax.errors import InputError
from vccjax.experiment import predicted_cells

MAX_SUBMISSION_CELLS = 200_000  # cell-eval 0.6.6 `prep` rejects larger files


def gene_columns(data_genes, wanted_genes, *, where: str) -> np.ndarray:
  """Column of each wanted gene in the data; InputError naming the first missing ones."""
  index = {g: i for i, g in enumerate(data_genes)}
  missing = [g for g in wanted_genes if g not in index]
  if missing:
    raise InputError(where, f"{len(missing)} of {len(wanted_genes)} genes were not in the "
                     f"training data, e.g. {missing[:5]}",
                     "train on data that measures every gene of the list")
  return np.array([index[g] for g in wanted_genes])


def write_submission(exp, *, predict_fn, params, pert_counts: pd.DataFrame, genes: list[str],
                     out_path: str, n_controls: int, seed: int = 0,
                     allow_featureless: bool = False, log=print) -> dict:
  """Writes `out_path` and returns a summary (cells per target, controls, seconds).

  Args:
    exp: the trained run's Experiment.
    pert_counts: VCC table with `target_gene` and `n_cells`.
    genes: output genes, in order (VCC `gene_names.csv`).
    n_controls: control cells to include (real controls, labelled with the control label).
    allow_featureless: predict targets that no feature source knows as "no information"
      (the model's average effect) instead of stopping with an error.
  """
  ds = exp.dataset
  control = ds.control_label
  targets = [t for t in pert_counts.target_gene if t != control]
  columns = gene_columns(ds.gene_names, genes, where="--genes")
  identity = np.array_equal(columns, np.arange(ds.n_genes))
  total = int(pert_counts.loc[pert_counts.target_gene != control, "n_cells"].sum()) + n_controls
  if total > MAX_SUBMISSION_CELLS:
    raise InputError("--n-controls", f"{total:,} cells in all; cell-eval prep accepts at most "
                     f"{MAX_SUBMISSION_CELLS:,}", "lower --n-controls")
  unseen = sorted({g for t in targets for g in targets_lib.genes_of(t)})
  feats = exp.features_for(unseen)
  enc = exp.encode(targets, feats=feats, allow_missing=allow_featureless)
  for target in feats.featureless(targets):
    log(f"[predict] warning: {target} has no features from {feats.sources}: predicted as 'no "
        "information'")
  rng = np.random.default_rng(seed)
  n_cells = dict(zip(pert_counts.target_gene, pert_counts.n_cells.astype(int)))
  set_size = exp.config.data.set_size
  t0, written = time.time(), 0
  with H5adWriter(out_path, var=pd.DataFrame(index=pd.Index(genes, name=None))) as writer, \
      futures.ThreadPoolExecutor(1, thread_name_prefix="vccjax-model") as model:
    def write(i, draws, log_fold):
      nonlocal written
      expr = predicted_cells.cells_of(exp, draws, log_fold.result())
      writer.append(expr if identity else expr[:, columns], _obs(draws.target, expr.shape[0],
                                                                 written))
      written += expr.shape[0]
      log(f"[predict] {i + 1}/{len(targets)} {draws.target}: {expr.shape[0]} cells "
          f"({written / max(time.time() - t0, 1e-9):,.0f} cells/s)")

    # The model predicts a target while the cells of the one before are made and written.
    pending = None
    for i, target in enumerate(targets):
      draws = predicted_cells.draw_cells(exp, rng, target, n_cells[target])
      log_fold = model.submit(predicted_cells.predict_log_folds, exp, predict_fn=predict_fn,
                              params=params, enc=type(enc)(*(a[i:i + 1] for a in enc)),
                              rows=np.zeros(len(draws.controls), np.int64),
                              control_cells=draws.controls, set_size=set_size)
      if pending:
        write(*pending)
      pending = (i, draws, log_fold)
    if pending:
      write(*pending)
    pool = ds.cells_of(control)  # honest controls: a uniform sample of the real ones
    controls = rng.choice(pool, size=n_controls, replace=n_controls > len(pool))
    for start in range(0, n_controls, 2048):
      rows = controls[start:start + 2048]
      writer.append(ds.log1p_rows(rows, genes=columns), _obs(control, len(rows), written))
      written += len(rows)
  return {"path": out_path, "cells": written, "targets": len(targets), "controls": n_controls,
          "seconds": time.time() - t0}


def _obs(target: str, n: int, offset: int) -> pd.DataFrame:
  return pd.DataFrame({"target_gene": [target] * n},
                      index=[f"cell_{offset + i}" for i in range(n)])
