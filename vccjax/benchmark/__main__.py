r"""`python -m vccjax.benchmark`: models side by side on held-out targets of any VCC-layout file.

  python -m vccjax.benchmark --data=FILE --folds=3 --out=DIR
  python -m vccjax.benchmark --data=FILE --test_targets=A,B --models=mean_effect,linear,set_tx \
      --config=configs/set_tx.py:bench --config.train.steps=500 --out=DIR

For each fold (a disjoint group of held-out test targets), every model is trained on the other
targets (validation targets, for model selection, come from the training targets), predicts the
test targets (as many cells as the real data has, plus the real controls) and is scored with the
VCC rules against the real cells. Each fold's directory holds `real.h5ad`, `baseline.h5ad` (the
cell-mean baseline) and `<model>.h5ad`, so anyone can re-score them with `cell-eval`.
`--repeats R` reruns the K folds with fold seeds seed, seed + 1, ... (directories `rR_foldK`).
Each fold is also scored against half of its real cells, with the other half as a prediction
(the technical-duplicate bound, `benchmark.duplicate`; `--notechnical_duplicate` skips it).
`DIR/results.json` has every score and one row per (repeat, fold, model, target);
`DIR/scores.png` shows them (per fold, against half the cells, paired); printed: a table of
means (and spread over (repeat, fold) pairs, 95% bootstrap interval over targets of the overall
score) and, when `set_tx` runs, its per-target paired difference against each peer.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from vccjax import config_file
from vccjax import logbook
from vccjax import models as models_lib
from vccjax.benchmark import duplicate
from vccjax.benchmark import folds
from vccjax.benchmark import plots
from vccjax.benchmark import statistics
from vccjax.errors import InputError
from vccjax.train import loop

_CONFIG = config_flags.DEFINE_config_file("config", f"{config_file.DEFAULT_CONFIG}:bench",
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
_MODELS = flags.DEFINE_list("models", ["mean_effect", "linear", "set_tx"],
                            "Models to compare.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the folds.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Reruns of the K folds, with fold seeds seed + r.")
_PAIRED = flags.DEFINE_string("paired", "set_tx", "The model compared per target with the others.")
_DUPLICATE = flags.DEFINE_bool(
    "technical_duplicate", True, "Also score half of each fold's real cells against the other "
    "half, and every model against the same half: the bound a prediction measured as noisily "
    "could reach.")
_SUMMARIZE = flags.DEFINE_bool("summarize_only", False, "Recompute the tables of an existing "
                               "--out/results.json (no training).")
flags.mark_flags_as_required(["data", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  config.data.path = os.path.abspath(_DATA.value)
  config.data.val_targets = _VAL.value
  out = os.path.abspath(_OUT.value)
  models = _MODELS.value
  t0 = time.time()
  if _SUMMARIZE.value:
    with open(os.path.join(out, "results.json")) as f:
      previous = json.load(f)
    report(out, previous["per_fold"], previous["models"], groups=previous["folds"],
           config=previous["config"], seconds=previous["seconds"],
           source=previous.get("source", previous["data"]))
    return
  try:
    models_lib.check_model_names(models, where="--models")  # before any model trains
    os.makedirs(out, exist_ok=True)
    if _CELL_TYPE.value:
      cell_type_groups = folds.cell_type_folds(config, out, _CELL_TYPE.value)
    groups, per_fold = [], []
    for r in range(_REPEATS.value):
      if _CELL_TYPE.value:
        fold_groups = cell_type_groups
      else:
        fold_groups = folds.fold_targets(
            config.data.path, test_targets=_TEST.value, folds=_FOLDS.value,
            kind=_FOLD_KIND.value, seed=_SEED.value + r, control_label=config.data.control_label)
      groups.append(fold_groups)
      for k, test in enumerate(fold_groups):
        name = f"r{r}_fold{k}" if _REPEATS.value > 1 else f"fold{k}"
        fold_dir = os.path.join(out, name)
        entry = {"repeat": r, "fold": k, "targets": test, "scores": folds.run_fold(
            config, fold_dir=fold_dir, test=test, models=models, log=print)}
        if _DUPLICATE.value:
          entry["duplicate"] = duplicate.score_fold(
              fold_dir, models, control_label=config.data.control_label, fdr=config.eval.fdr,
              seed=_SEED.value + r)
        per_fold.append(entry)
  except (InputError, loop.NonFiniteLossError) as e:
    raise SystemExit(f"error: {e}")
  report(out, per_fold, models, groups=groups, config=config.to_dict(), seconds=time.time() - t0,
         source=os.path.abspath(_DATA.value))


def report(out: str, per_fold: list[dict], models: list[str], *, groups, config: dict,
           seconds: float, source: str) -> None:
  """Writes `out/results.json` (scores, per-target rows, summary, paired) and prints the tables."""
  repeats = 1 + max(f["repeat"] for f in per_fold)
  table, summary = folds.summary_table(per_fold, models)
  target_rows = statistics.target_rows(per_fold, models)
  bound, bound_summary = duplicate.summary_table(per_fold, models)
  paired, paired_result = "", {}
  if _PAIRED.value in models and len(models) > 1:
    paired, paired_result = folds.paired_table(per_fold, _PAIRED.value,
                                               [m for m in models if m != _PAIRED.value])
  logbook.write_json_atomic(os.path.join(out, "results.json"), {
      "data": config["data"]["path"], "source": source, "folds": groups, "models": models,
      "repeats": repeats, "summary": summary, "technical_duplicate": bound_summary,
      "paired": paired_result, "per_fold": per_fold, "per_target": target_rows,
      "config": config, "seconds": seconds})
  name = os.path.basename(source)  # `--data` (transfer trains on a relabelled copy of it)
  figure = plots.plot_scores(per_fold, models, summary=summary, bound=bound_summary,
                             paired=paired_result, paired_model=_PAIRED.value,
                             title=f"{name}: {len(per_fold)} (repeat, fold) pair(s)",
                             path=os.path.join(out, "scores.png"))
  print(f"\n{name}: {len(per_fold)} (repeat, fold) pair(s) of "
        f"held-out targets, mean (sd) over them; scaled scores against the cell-mean baseline; "
        f"95% CI: bootstrap over the held-out targets of each (repeat, fold) pair")
  print(table)
  if bound:
    print("\nScored against a random half of each held-out target's cells: the technical "
          "duplicate (the other half as the prediction) and every model, mean (sd) over the "
          "pairs; share of bound = overall / the duplicate's")
    print(bound)
  if paired:
    print(f"\n{_PAIRED.value} minus each peer, per target (the official rule on one target, mean "
          f"over repeats): targets won/tied/lost, mean difference [95% bootstrap CI over targets]")
    print(paired)
  print(f"[bench] wrote {out}/results.json and {figure} ({seconds:.0f}s)")


if __name__ == "__main__":
  app.run(main)
