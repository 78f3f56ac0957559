"""The benchmark's folds: which targets each holds out, every model trained and scored on one,
and the table of scores over folds."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np

from vccjax.benchmark import statistics
from vccjax.data import dataset as dataset_lib
from vccjax.data import splits
from vccjax.data import targets as targets_lib
from vccjax.errors import InputError
from vccjax.train import loop

METRIC_KEYS = ("des", "pds", "mae", "des_scaled", "pds_scaled", "mae_scaled", "overall",
               "pds_centroid", "pearson_centred")
_RAW = ("des", "pds", "mae", "pds_centroid", "pearson_centred")  # the baseline row has these


def fold_targets(path: str, *, test_targets: str, folds: int, kind: str, seed: int,
                 control_label: str) -> list[list[str]]:
  """The held-out target groups: the explicit list, or K seeded folds of the chosen kind."""
  if test_targets:
    return [splits.parse_targets(test_targets)]
  if not folds:
    raise InputError("--folds/--test_targets", "no held-out targets", "give one of the two")
  adata = dataset_lib.io.read_h5ad(path, backed=True)
  labels = dataset_lib.io.read_labels(adata, path=path, control_label=control_label)
  return splits.kfold_targets(splits.eligible_targets(labels.targets, kind), folds=folds,
                              seed=seed)


def cell_type_folds(config, out: str, holdout: str) -> list[list[str]]:
  """Relabels the data by cell type (into `out`) and returns the held-out targets per fold."""
  relabelled = os.path.join(out, "labelled_by_cell_type.h5ad")
  cell_types = targets_lib.write_labelled_by_cell_type(
      config.data.path, relabelled, control_label=config.data.control_label)
  config.data.path = relabelled
  chosen = cell_types if holdout == "all" else [holdout]
  unknown = sorted(set(chosen) - set(cell_types))
  if unknown:
    raise InputError("--holdout_cell_type", f"{unknown} not among {cell_types}",
                     "name a cell type of obs['cell_type'] or 'all'")
  adata = dataset_lib.io.read_h5ad(relabelled, backed=True)
  labels = dataset_lib.io.read_labels(adata, path=relabelled,
                                      control_label=config.data.control_label)
  return [[t for t in labels.targets if targets_lib.cell_type_of(t) == c] for c in chosen]


def run_fold(config, *, fold_dir: str, test: list[str], models: list[str], log) -> dict:
  """Trains and scores every model on one fold; returns {model: test scores}."""
  results = {}
  for name in models:
    cfg = config.copy_and_resolve_references()
    cfg.data.test_targets = ",".join(test)
    cfg.model.name = name
    cfg.eval.write_cells = True
    cfg.eval.final_val = False  # only test scores are read: no final validation scoring
    workdir = os.path.join(fold_dir, name)
    t0 = time.time()
    scores = loop.train_and_evaluate(cfg, workdir)["test"]
    scores["seconds"] = time.time() - t0
    results[name] = scores
    cells = os.path.join(workdir, "test_cells")
    shutil.copyfile(os.path.join(cells, "pred.h5ad"), os.path.join(fold_dir, f"{name}.h5ad"))
    for ref in ("real", "baseline"):
      shutil.copyfile(os.path.join(cells, f"{ref}.h5ad"), os.path.join(fold_dir, f"{ref}.h5ad"))
    log(f"[bench] {os.path.basename(fold_dir)} {name}: overall {scores['overall']:.2f} "
        f"({scores['seconds']:.0f}s)")
  return results


def summary_table(per_fold: list[dict], models: list[str]) -> tuple[str, dict]:
  """A printed table of mean (sd) over (repeat, fold) pairs, and the same numbers as a dict.

  per_fold: [{"repeat", "fold", "scores": {model: fold scores}}]. Each model's row also has the
  95% bootstrap interval over targets of its mean overall score (`statistics`).
  """
  rows, summary = [], {}
  scores = [f["scores"] for f in per_fold]
  base = {k: [f[models[0]][f"{k}_baseline"] for f in scores] for k in _RAW}
  entries = [("cell-eval baseline", {k: base.get(k, [0.0] * len(scores)) for k in METRIC_KEYS})]
  entries += [(m, {k: [f[m][k] for f in scores] for k in METRIC_KEYS}) for m in models]
  header = (f"{'model':<20}" + "".join(f"{k:>13}" for k in METRIC_KEYS)
            + f"{'overall 95% CI':>18}")
  for name, values in entries:
    summary[name] = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v))}
                     for k, v in values.items()}
    cells = []
    for k in METRIC_KEYS:
      v = values[k]
      cells.append(f"{np.mean(v):8.3f}" + (f"({np.std(v):.2f})" if len(v) > 1 else " " * 6))
    interval = ""
    if name in models:
      _, lo, hi = statistics.overall_interval(per_fold, name)
      summary[name]["overall"].update(ci_low=lo, ci_high=hi)
      interval = f"[{lo:.1f}, {hi:.1f}]"
    rows.append(f"{name:<20}" + "".join(f"{c:>13}" for c in cells) + f"{interval:>18}")
  return "\n".join([header] + rows), summary


def paired_table(per_fold: list[dict], model: str, peers: list[str]) -> tuple[str, dict]:
  """`model` against each peer: per-target win/tie/loss, mean difference [95% interval]."""
  target_rows = statistics.target_rows(per_fold, [model] + peers)
  lines, result = [f"{model + ' vs':<20}{'win/tie/loss':>14}{'mean diff':>11}{'95% CI':>18}"], {}
  for peer in peers:
    p = statistics.paired(per_fold, target_rows, model, peer)
    result[peer] = p
    interval = f"[{p['low']:.1f}, {p['high']:.1f}]"
    counts = f"{p['wins']}/{p['ties']}/{p['losses']}"
    lines.append(f"{peer:<20}{counts:>14}{p['mean_difference']:>11.2f}{interval:>18}")
  return "\n".join(lines), result
