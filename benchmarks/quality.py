r"""The README's results table: every model on the four real files of ../shared/data, one config.

  python benchmarks/quality.py --out=/tmp/vccjax_quality [--models=mean_effect,linear,set_tx]

Runs `python -m vccjax.benchmark` (config `configs/set_tx.py:bench`, the same for every file)
on each file with its split, then prints a markdown table (mean over folds, sd in brackets) and
the exact command of each row, and writes OUT/quality.json. Extra `--config.x=v` flags are
passed through to every run.
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

# (file, split flags, split in words)
RUNS = [
    ("norman19_k562.h5ad", ["--folds=3", "--fold_targets=singles"], "3 folds of singles"),
    ("mcfaline23_glioma.h5ad", ["--folds=3"], "3 folds of targets"),
    ("datlinger17_jurkat.h5ad", ["--folds=4"], "4 folds of targets"),
    ("vcc_h1_subset.h5ad", ["--folds=5"], "leave one target out"),
]


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--out", required=True)
  p.add_argument("--models", default="mean_effect,linear,set_tx")
  p.add_argument("--only", default="", help="comma-separated file names to run")
  args, passthrough = p.parse_known_args()
  rows, t_all = [], time.time()
  for name, split, words in RUNS:
    if args.only and name not in args.only.split(","):
      continue
    out = os.path.join(args.out, name.replace(".h5ad", ""))
    cmd = [sys.executable, "-m", "vccjax.benchmark", f"--data=../shared/data/{name}", *split,
           f"--models={args.models}", f"--out={out}", *passthrough]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
      sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "results.json")) as f:
      summary = json.load(f)["summary"]
    shown = " ".join(["python", "-m", "vccjax.benchmark", *cmd[3:-len(passthrough) or None]])
    rows.append((name, words, summary, shown.replace(out, "OUT"), time.time() - t0))
    print(f"[quality] {name}: {time.time() - t0:.0f}s", flush=True)
  print_table(rows)
  with open(os.path.join(args.out, "quality.json"), "w") as f:
    json.dump([{"data": n, "split": w, "summary": s, "command": c, "seconds": t}
               for n, w, s, c, t in rows], f, indent=2)
  print(f"\ntotal {time.time() - t_all:.0f}s")


def print_table(rows) -> None:
  print("\n| data | split | model | DES | PDS | MAE | overall | per target [95% CI] |")
  print("|---|---|---|---|---|---|---|---|")
  for name, words, summary, _, _ in rows:
    for model, m in summary.items():
      cell = lambda k: f"{m[k]['mean']:.3f} ({m[k]['sd']:.2f})"
      overall = f"{m['overall']['mean']:.2f} ({m['overall']['sd']:.2f})" if "overall" in m else "0"
      t = m.get("per_target_overall")
      per_target = f"{t['mean']:.2f} [{t['ci_low']:.1f}, {t['ci_high']:.1f}]" if t else ""
      print(f"| {name} | {words} | {model} | {cell('des')} | {cell('pds')} | {cell('mae')} | "
            f"{overall} | {per_target} |")
  print("\ncommands (OUT = your output directory):")
  for name, _, _, command, seconds in rows:
    print(f"  {command}    # {seconds:.0f}s")


if __name__ == "__main__":
  main()
