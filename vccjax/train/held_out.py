"""In-process VCC evaluation of a model on held-out targets, as `cell-eval` would score it.

The real side holds the held-out targets' cells and a sample of control cells; the predicted side
holds as many predicted cells per target plus the same control cells (honest controls: real
controls predict controls). The reference is the cell-mean baseline built from the training
targets' pseudobulks (controls included), exactly as `cell-eval baseline` builds it.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
import pandas as pd

from vccjax import metrics
from vccjax.metrics import systema
from vccjax.data import targets as targets_lib
from vccjax.data.writer import H5adWriter
from vccjax.experiment import predicted_cells


# The real side of the latest evaluators (cells, Wilcoxon summaries, the baseline's scores),
# keyed by everything they depend on: reused when the next model meets the same held-out cells.
_REFERENCES: dict = {}
_KEEP_REFERENCES = 4


class VccEvaluator:
  """Scores predictions for `targets` of an Experiment against its real cells.

  Args:
    exp: the Experiment (data, features, model).
    targets: held-out targets to score (at least one).
    max_cells_per_target: cap on real (and predicted) cells per target, for speed.
    max_control_cells: cap on control cells on each side.
    fdr: "global" (VCC 2025) or "per_perturbation".
    seed: seed of the cell subsampling and of the controls the predictions start from.
    exclude_cells: cells never scored (few-shot cells given to training).
  """

  def __init__(self, exp, targets, *, max_cells_per_target: int = 1000,
               max_control_cells: int = 2000, fdr: str = "global", seed: int = 0,
               exclude_cells=()):
    ds = exp.dataset
    self.exp, self.targets, self.fdr, self.seed = exp, list(targets), fdr, seed
    path = exp.config.data.path
    stamp = (os.stat(path).st_mtime_ns, os.stat(path).st_size) if os.path.exists(path) else None
    key = (repr(sorted(exp.config.data.to_dict().items())), stamp, tuple(self.targets),
           tuple(exp.split.train), max_cells_per_target, max_control_cells, fdr, seed,
           tuple(np.asarray(exclude_cells).tolist()))
    if key in _REFERENCES:  # the benchmark scores several models on the same held-out cells
      self.__dict__.update(_REFERENCES[key])
      self.encoding = exp.encode(self.targets, allow_missing=True)
      return
    rng = np.random.default_rng([seed, 1])
    cells, labels = [], []
    for t in self.targets:
      own = np.setdiff1d(ds.cells_of(t), exclude_cells)
      own = rng.choice(own, size=min(len(own), max_cells_per_target), replace=False)
      cells.append(np.sort(own))
      labels += [t] * len(own)
    controls = self._control_pool(ds)
    controls = np.sort(rng.choice(controls, size=min(len(controls), max_control_cells),
                                  replace=False))
    self.n_cells = {t: len(c) for t, c in zip(self.targets, cells)}
    self.control_expr = ds.log1p_rows(controls)
    self.real_expr = np.concatenate([ds.log1p_rows(np.concatenate(cells)), self.control_expr])
    self.real_targets = np.array(labels + [ds.control_label] * len(controls))
    # The real side never changes: summarise it (pseudobulks, Wilcoxon tests) once.
    self.real_summary = metrics.summarize(log1p_expr=self.real_expr, targets=self.real_targets,
                                          control_label=ds.control_label, where="real")
    self.encoding = exp.encode(self.targets, allow_missing=True)
    train_groups = [ds.target_pseudobulk[ds.targets.index(t)] for t in exp.split.train]
    baseline_pb = np.mean(train_groups + [ds.control_pseudobulk], axis=0)
    self.baseline_expr = np.broadcast_to(baseline_pb, (len(labels), ds.n_genes))
    # Systema-style reference: the centroid of the training perturbations' pseudobulks.
    self.centroid = np.mean(train_groups, axis=0) if train_groups else ds.control_pseudobulk
    self.baseline = self._score(self.baseline_expr)
    reference = {k: v for k, v in self.__dict__.items() if k not in ("exp", "encoding")}
    _REFERENCES[key] = reference
    while len(_REFERENCES) > _KEEP_REFERENCES:
      _REFERENCES.pop(next(iter(_REFERENCES)))

  def _control_pool(self, ds) -> np.ndarray:
    """All controls; those of one cell type when every target is tied to it ('A@T98G')."""
    controls = ds.cells_of(ds.control_label)
    cell_types = {targets_lib.cell_type_of(t) for t in self.targets}
    if len(cell_types) == 1 and None not in cell_types:
      (cell_type,) = cell_types
      controls = controls[ds.context_cell_types[ds.context[controls]] == cell_type]
    return controls

  def _score(self, pred_expr) -> dict:
    ds = self.exp.dataset
    pred = np.concatenate([pred_expr, self.control_expr]).astype(np.float32)
    pred_summary = metrics.summarize(log1p_expr=pred, targets=self.real_targets,
                                     control_label=ds.control_label, where="pred")
    result = metrics.compare(real=self.real_summary, pred=pred_summary,
                             gene_names=ds.gene_names, fdr=self.fdr)
    out = result.means()
    out["per_target"] = result.table()
    column = {g: i for i, g in enumerate(ds.gene_names)}
    centred = systema.centroid_scores(
        real_pseudobulk=self.real_summary.pseudobulk[:-1],
        pred_pseudobulk=pred_summary.pseudobulk[:-1], centroid=self.centroid,
        real_p_value=self.real_summary.p_value,
        target_gene_index=np.array([_target_column(p, column) for p in result.perturbations]))
    for name, values in centred.items():
      out[name] = float(np.mean(values))
      for row, v in zip(out["per_target"], values):
        row[name] = float(v)
    return out

  def predict(self, *, predict_fn, params) -> np.ndarray:
    """Predicted cells [sum of n_cells, G] of every target, in `self.targets` order."""
    rng = np.random.default_rng([self.seed, 2])
    parts = [predicted_cells.predict_target(self.exp, predict_fn=predict_fn, params=params,
                                            target=t, n_cells=self.n_cells[t], rng=rng,
                                            enc=_row(self.encoding, i))
             for i, t in enumerate(self.targets)]
    return sp.vstack(parts).toarray()

  def __call__(self, *, predict_fn, params, write_dir: str | None = None) -> dict:
    """Raw, baseline and scaled scores: des, pds, mae, *_baseline, *_scaled, overall.

    With `write_dir`, also writes `real.h5ad`, `pred.h5ad` and `baseline.h5ad` there (log1p,
    controls included), so the scores can be reproduced with `cell-eval run`.
    """
    pred_expr = self.predict(predict_fn=predict_fn, params=params)
    raw = self._score(pred_expr)
    scores = metrics.scaled_scores(raw=raw, baseline=self.baseline)
    scores["per_target"] = raw["per_target"]
    for name in systema.METRICS:
      scores[name], scores[f"{name}_baseline"] = raw[name], self.baseline[name]
    if write_dir:
      n_pred = len(self.real_targets) - len(self.control_expr)
      for name, expr in (("real", self.real_expr[:n_pred]), ("pred", pred_expr),
                         ("baseline", self.baseline_expr)):
        self._write(os.path.join(write_dir, f"{name}.h5ad"), expr)
    return scores

  def _write(self, path: str, expr) -> None:
    genes = pd.DataFrame(index=pd.Index(self.exp.dataset.gene_names.astype(str)))
    with H5adWriter(path, var=genes) as writer:
      writer.append(np.asarray(expr, np.float32),
                    pd.DataFrame({"target_gene": self.real_targets[:len(expr)]},
                                 index=[f"cell_{i}" for i in range(len(expr))]))
      writer.append(self.control_expr,
                    pd.DataFrame({"target_gene": self.real_targets[len(expr):]},
                                 index=[f"ctrl_{i}" for i in range(len(self.control_expr))]))


def _target_column(perturbation: str, column: dict) -> int:
  """The output column of a single perturbation's target gene ('A@T98G' -> A's), else -1."""
  genes = targets_lib.genes_of(perturbation)
  return column.get(genes[0], -1) if len(genes) == 1 else -1


def _row(enc, i):
  return type(enc)(*(a[i:i + 1] for a in enc))
