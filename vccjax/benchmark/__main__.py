r"""`python -m vccjax.benchmark`: models side by side on held-out targets of any VCC-layout file.

  python -m vccjax.benchmark --data=FILE --folds=3 --out=DIR
  python -m vccjax.benchmark --data=FILE --test_targets=A,B --models=mean_effect,linear,set_tx \
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
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from vccjax import config_file
from vccjax import logbook
from vccjax.benchmark import folds
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
_MODELS = flags.DEFINE_list("models", ["mean_effect", "linear", "set_tx"], "Models to compare.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the folds.")
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
  os.makedirs(out, exist_ok=True)
  try:
    if _CELL_TYPE.value:
      groups = folds.cell_type_folds(config, out, _CELL_TYPE.value)
    else:
      groups = folds.fold_targets(config.data.path, test_targets=_TEST.value, folds=_FOLDS.value,
                                  kind=_FOLD_KIND.value, seed=_SEED.value,
                                  control_label=config.data.control_label)
    t0 = time.time()
    per_fold = [folds.run_fold(config, fold_dir=os.path.join(out, f"fold{k}"), test=test,
                               models=_MODELS.value, log=print)
                for k, test in enumerate(groups)]
  except (InputError, loop.NonFiniteLossError) as e:
    raise SystemExit(f"error: {e}")
  table, summary = folds.summary_table(per_fold, _MODELS.value)
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
