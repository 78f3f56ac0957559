r"""Chooses between set_tx settings by validation targets only: how the `bench` config is chosen.

  python benchmarks/choose_config.py --out=/tmp/choose \
      --candidate="bench" \
      --candidate="dropout=--config.model.dropout=0.1" \
      --candidate="steps800=--config.train.steps=800 --config.train.eval_every=200"

Each candidate (`NAME=FLAGS`, flags passed to `python -m vccjax.benchmark`; `bench` alone: no
flags) trains set_tx on the seed-0 folds (`--repeats R`: seeds 0..R-1) of Norman 2019 singles
and Datlinger 2017 (the files and splits of `quality.py`); each fold's run keeps the checkpoint
with the best score on its validation targets (drawn from the fold's training targets); an
ensemble (`train.ensemble`) is scored as a whole on them, its members' mean. A candidate's
figure is the mean of those validation scores over the folds (7 a repeat). Test targets are
scored by the runs but never read here. Prints one line per candidate, best first, and writes
OUT/choice.json. A candidate's file whose benchmark finished (OUT/NAME/FILE/results.json) is not
run again.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from quality import RUNS  # noqa: E402

FILES = ("norman19_k562.h5ad", "datlinger17_jurkat.h5ad")


def best_validation_scores(run_dir: str) -> list[float]:
  """The validation score of the model each fold's set_tx run kept (`foldK/`, `rR_foldK/`): its
  best `val/overall`, or an ensemble's own score (`ensemble_val/overall`, the members' mean)."""
  scores = []
  for path in sorted(glob.glob(os.path.join(run_dir, "*fold*", "set_tx", "metrics.jsonl"))):
    with open(path) as f:
      records = list(map(json.loads, f))
    values = [r["val/overall"] for r in records if "val/overall" in r]
    ensemble = [r["ensemble_val/overall"] for r in records if "ensemble_val/overall" in r]
    if not values:
      raise SystemExit(f"{path}: no validation score (was eval_every set?)")
    scores.append(ensemble[-1] if ensemble else max(values))
  return scores


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", required=True)
  p.add_argument("--candidate", action="append", required=True, help="NAME=FLAGS, or bench")
  p.add_argument("--repeats", type=int, default=1,
                 help="fold seeds 0..R-1, as quality.py's repeats (more validation targets)")
  args = p.parse_args()
  results = []
  for candidate in args.candidate:
    name, _, flags = candidate.partition("=")
    scores, t0 = [], time.time()
    for file_name, split, *_ in RUNS:
      if file_name not in FILES or any("doubles" in f for f in split):
        continue
      out = os.path.join(args.out, name, file_name.replace(".h5ad", ""))
      cmd = [sys.executable, "-m", "vccjax.benchmark", f"--data=../shared/data/{file_name}",
             *split, "--models=set_tx", f"--repeats={args.repeats}", f"--out={out}", *flags.split()]
      if not os.path.exists(os.path.join(out, "results.json")):  # else: done by an earlier run
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
          raise SystemExit(f"{name}: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
      scores += best_validation_scores(out)
    mean = sum(scores) / len(scores)
    results.append({"name": name, "flags": flags, "mean_best_val": mean, "folds": scores,
                    "seconds": time.time() - t0})
    print(f"[choose] {name}: mean best validation overall {mean:.2f} over {len(scores)} folds "
          f"({time.time() - t0:.0f}s)", flush=True)
  results.sort(key=lambda r: -r["mean_best_val"])
  for r in results:
    print(f"{r['mean_best_val']:7.2f}  {r['name']}  {r['flags']}")
  with open(os.path.join(args.out, "choice.json"), "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
