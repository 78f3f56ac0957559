r"""The README's results tables: every model on the real files of ../shared/data, one config.

  python benchmarks/quality.py --out=/tmp/vccjax_quality [--models=...] [--repeats=3]

Runs `python -m vccjax.benchmark` (config `configs/set_tx.py:bench`, the same for every file):
unseen singles of Norman 2019 and Datlinger 2017 with `--repeats` fold seeds; Norman's 5 seen
doubles, zero-shot transfer to each McFaline glioma line and leave-one-out on the VCC subset
once (their folds are fixed by the data; `additive` joins the peers of doubles and transfer).
(McFaline's "folds of targets" split is not run: no gene passes FDR < 0.05 for any of its
targets, so every model scores 0 there.) Then prints a markdown table (mean over (repeat, fold)
pairs, sd in brackets; its 95% bootstrap interval over targets; the Systema-style
centroid-relative PDS and centred Pearson), set_tx's per-target paired differences against
every peer, the technical-duplicate bound (half the real cells predicting the other half) with
each model's share of it, the exact command and the time of each row, and writes
OUT/quality.json. Extra `--config.x=v` flags are passed through to every run. Time: see the
README (measured total).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")

MODEL_ORDER = ["mean_effect", "nearest", "nearest_k", "linear", "additive", "set_tx"]

# (file, split flags, split in words, extra peers, most fold seeds). Folds fixed by the data
# (leave-one-out, one per cell type) run once; so do the 5 doubles (time).
RUNS = [
    ("norman19_k562.h5ad", ["--folds=3", "--fold_targets=singles"], "3 folds of singles", [],
     None),
    ("datlinger17_jurkat.h5ad", ["--folds=4"], "4 folds of targets", [], None),
    ("norman19_k562.h5ad", ["--folds=2", "--fold_targets=seen_doubles"],
     "5 seen doubles, 2 folds", ["additive"], 1),
    ("mcfaline23_glioma.h5ad", ["--holdout_cell_type=all"],
     "each glioma line held out, zero-shot (3 folds)", ["additive"], 1),
    ("vcc_h1_subset.h5ad", ["--folds=5"], "leave one target out", [], 1),
]


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--out", required=True)
  p.add_argument("--models", default="mean_effect,nearest,nearest_k,linear,set_tx")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--only", default="", help="comma-separated file names to run")
  args, passthrough = p.parse_known_args()
  rows, t_all = [], time.time()
  for name, split, words, extra, max_repeats in RUNS:
    if args.only and name not in args.only.split(","):
      continue
    label = name + (" doubles" if any("doubles" in f for f in split) else
                    " transfer" if any("cell_type" in f for f in split) else "")
    out = os.path.join(args.out, label.replace(".h5ad", "").replace(" ", "_"))
    models = args.models.split(",")
    models = ",".join(models[:-1] + extra + models[-1:]) if models[-1] == "set_tx" else \
        ",".join(models + extra)
    repeats = min(args.repeats, max_repeats or args.repeats)
    cmd = [sys.executable, "-m", "vccjax.benchmark", f"--data=../shared/data/{name}", *split,
           f"--models={models}", f"--repeats={repeats}", f"--out={out}", *passthrough]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
      sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "results.json")) as f:
      results = json.load(f)
    summary = {**results["summary"], "paired": results.get("paired", {}),
               "technical_duplicate": results.get("technical_duplicate", {})}
    shown = " ".join(["python", "-m", "vccjax.benchmark", *cmd[3:-len(passthrough) or None]])
    rows.append((label, words, summary, shown.replace(out, "OUT"), time.time() - t0))
    print(f"[quality] {label}: {time.time() - t0:.0f}s", flush=True)
  print_table(rows)
  with open(os.path.join(args.out, "quality.json"), "w") as f:
    json.dump([{"data": n, "split": w, "summary": s, "command": c, "seconds": t}
               for n, w, s, c, t in rows], f, indent=2)
  print(f"\ntotal {time.time() - t_all:.0f}s")


def print_table(rows) -> None:
  print("\n| data | split | model | DES | PDS | MAE | overall | 95% CI (targets) | "
        "centroid PDS | centred Pearson (top 20 DE) |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for name, words, summary, _, _ in rows:
    order = ["cell-eval baseline", *MODEL_ORDER]
    for model, m in sorted(summary.items(), key=lambda kv: order.index(kv[0])
                           if kv[0] in order else len(order)):
      if model in ("paired", "technical_duplicate"):
        continue
      cell = lambda k: f"{m[k]['mean']:.3f} ({m[k]['sd']:.2f})"
      overall = f"{m['overall']['mean']:.2f} ({m['overall']['sd']:.2f})" if "overall" in m else "0"
      o = m.get("overall", {})
      interval = f"[{o['ci_low']:.1f}, {o['ci_high']:.1f}]" if "ci_low" in o else ""
      systema = " | ".join(cell(k) if k in m else "" for k in ("pds_centroid", "pearson_centred"))
      print(f"| {name} | {words} | {model} | {cell('des')} | {cell('pds')} | {cell('mae')} | "
            f"{overall} | {interval} | {systema} |")
  print("\n| data | set_tx vs | win / tie / loss (targets) | mean difference [95% CI] |")
  print("|---|---|---|---|")
  for name, _, summary, _, _ in rows:
    for peer, p in sorted(summary["paired"].items(), key=lambda kv: MODEL_ORDER.index(kv[0])
                          if kv[0] in MODEL_ORDER else len(MODEL_ORDER)):
      print(f"| {name} | {peer} | {p['wins']} / {p['ties']} / {p['losses']} | "
            f"{p['mean_difference']:.2f} [{p['low']:.1f}, {p['high']:.1f}] |")
  print("\nAgainst a random half of each held-out target's cells (`benchmark.duplicate`): the "
        "technical duplicate (the other half) and each model, overall (sd over folds), share of "
        "the duplicate's score")
  print("\n| data | technical duplicate | " + " | ".join(MODEL_ORDER) + " |")
  print("|---|---|" + "---|" * len(MODEL_ORDER))
  for name, _, summary, _, _ in rows:
    bound = summary["technical_duplicate"]
    if not bound:
      continue
    duplicate = bound["technical_duplicate"]
    cells = [f"{bound[m]['overall']:.2f} ({bound[m]['share']:.2f})" if m in bound else ""
             for m in MODEL_ORDER]
    print(f"| {name} | {duplicate['overall']:.2f} ({duplicate['sd']:.2f}) | "
          + " | ".join(cells) + " |")
  print("\ncommands (OUT = your output directory):")
  for name, _, _, command, seconds in rows:
    print(f"  {command}    # {seconds:.0f}s")


if __name__ == "__main__":
  main()
