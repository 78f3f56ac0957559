r"""`python -m vccjax.benchmark`: models side by side on held-out targets of any VCC-layout file.

  python -m vccjax.benchmark --data=FILE --folds=3 --out=DIR
  python -m vccjax.benchmark --data=FILE --test_targets=A,B --models=cell_mean,linear,set_tx \
      --config=configs/set_tx.py:bench --config.train.steps=500 --out=DIR

For each fold (a disjoint group of held-out test targets), every model is trained on the other
targets (validation targets, for model selection, come from the training targets), predicts the
test targets (as many cells as the real data has, plus the real controls) and is scored with the
VCC rules against the real cells. Each fold's directory holds `real.h5ad`, `baseline.h5ad` (the
cell-mean baseline) and `<model>.h5ad`, so anyone can re-score them with `cell-eval`.
`DIR/results.json` has every score; a table of means (and spread over folds) is printed.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from vccjax import logbook
from vccjax import train
from vccjax.data import dataset as dataset_lib
from vccjax.data import splits
from vccjax.data import targets as targets_lib
from vccjax.errors import InputError

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "configs", "set_tx.py")
_CONFIG = config_flags.DEFINE_config_file("config", f"{_DEFAULT_CONFIG}:bench",
                                          "Config of every model (one config for all data).",
                                          lock_config=False)
_DATA = flags.DEFINE_string("data", None, "VCC-layout .h5ad (raw counts, obs['target_gene']).")
_TEST = flags.DEFINE_string("test_targets", "", "Comma-separated held-out targets (one fold).")
_VAL = flags.DEFINE_string("val_targets", "", "Comma-separated validation targets.")
_FOLDS = flags.DEFINE_integer("folds", 0, "K disjoint folds of held-out targets (instead of "
                              "--test_targets).")
_FOLD_KIND = flags.DEFINE_enum(
    "fold_targets", "singles", ["singles", "doubles", "seen_doubles", "all"],
    "Which targets the folds hold out; seen_doubles: combinations whose singles all trained.")
_CELL_TYPE = flags.DEFINE_string(
    "holdout_cell_type", "", "Transfer: hold out every perturbation of this cell type ('all': "
    "one fold per cell type). Perturbed cells are relabelled TARGET@CELLTYPE; the model knows "
    "the same target in the other cell types and the held-out type's control cells.")
_MODELS = flags.DEFINE_list("models", ["cell_mean", "linear", "set_tx"], "Models to compare.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the folds.")
flags.mark_flags_as_required(["data", "out"])

METRIC_KEYS = ("des", "pds", "mae", "des_scaled", "pds_scaled", "mae_scaled", "overall")


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
    workdir = os.path.join(fold_dir, name)
    t0 = time.time()
    scores = train.train_and_evaluate(cfg, workdir)["test"]
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
  """A printed table of mean (sd) over folds, and the same numbers as a dict."""
  rows, summary = [], {}
  base = {k: [f[models[0]][f"{k}_baseline"] for f in per_fold] for k in ("des", "pds", "mae")}
  entries = [("cell-eval baseline", {**{k: base[k] for k in base},
                                     **{k: [0.0] * len(per_fold) for k in METRIC_KEYS[3:]}})]
  entries += [(m, {k: [f[m][k] for f in per_fold] for k in METRIC_KEYS}) for m in models]
  header = f"{'model':<20}" + "".join(f"{k:>13}" for k in METRIC_KEYS)
  for name, values in entries:
    summary[name] = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v))}
                     for k, v in values.items()}
    cells = []
    for k in METRIC_KEYS:
      v = values[k]
      cells.append(f"{np.mean(v):8.3f}" + (f"({np.std(v):.2f})" if len(v) > 1 else " " * 6))
    rows.append(f"{name:<20}" + "".join(f"{c:>13}" for c in cells))
  return "\n".join([header] + rows), summary


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  config.data.path = os.path.abspath(_DATA.value)
  config.data.val_targets = _VAL.value
  out = os.path.abspath(_OUT.value)
  os.makedirs(out, exist_ok=True)
  try:
    if _CELL_TYPE.value:
      groups = cell_type_folds(config, out, _CELL_TYPE.value)
    else:
      groups = fold_targets(config.data.path, test_targets=_TEST.value, folds=_FOLDS.value,
                            kind=_FOLD_KIND.value, seed=_SEED.value,
                            control_label=config.data.control_label)
    t0 = time.time()
    per_fold = [run_fold(config, fold_dir=os.path.join(out, f"fold{k}"), test=test,
                         models=_MODELS.value, log=print)
                for k, test in enumerate(groups)]
  except (InputError, train.NonFiniteLossError) as e:
    raise SystemExit(f"error: {e}")
  table, summary = summary_table(per_fold, _MODELS.value)
  logbook.write_json_atomic(os.path.join(out, "results.json"), {
      "data": config.data.path, "folds": groups, "models": _MODELS.value,
      "summary": summary, "per_fold": per_fold, "config": config.to_dict(),
      "seconds": time.time() - t0})
  print(f"\n{os.path.basename(config.data.path)}: {len(groups)} fold(s) of held-out targets, "
        f"mean (sd) over folds; scaled scores against the cell-mean baseline")
  print(table)
  print(f"[bench] wrote {out}/results.json ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
  app.run(main)
