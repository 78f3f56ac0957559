"""Speed of our VCC scorer against cell-eval (0.8.x; 0.6.6 with --rules 0.6) on the same files.

Builds (or reuses, with --cache-dir) a real and a predicted screen of the VCC validation shape,
50 perturbations x 1,000 cells + 10,000 controls x 18,080 genes, and a 44,000-cell training file
(raw NB counts at ~50k UMI per cell, ~46% of the values nonzero, like deep 10x data), all three
with `X` stored as --layout says (CSR, or rewritten dense or CSC, streamed, by
`h5ad_layouts.py`). Then times, each in its own cold process on the same files: our whole job
(`python -m vccjax.score --pred --real --train --pert-counts`: read, scale, DES/PDS/MAE, the
baseline built from the training file, the overall score) and `cell-eval run --profile vcc`
(DES/PDS/MAE, no baseline) from the `.venv-ce08` virtualenv. Prints both wall and CPU times,
the ratio, each side's peak resident memory, and whether the model's three scores agree to 1e-6.

  python benchmarks/score_speed.py --cache-dir /tmp/vcc15_speed --layout csr   # full size
  python benchmarks/score_speed.py --genes 2000 --cells-per-pert 300 --layout dense  # quick

Measured at full size on 2 idle cores, 2026-12-06 23:00 UTC, `--runs 3` (README "The evaluator"
has every figure and the earlier ones): CSR: vccjax 21.5 s first run / 20.5 s median, 37.2 s
CPU, 2.68 GiB peak; cell-eval 0.8.2 491.2 s wall, 871.5 s CPU, 15.8 GiB: 22.9x / 24.0x wall.
Dense: vccjax 25.6 / 25.6 s, 43.3 s CPU, 2.94 GiB; cell-eval 691.7 s, 1240.6 s CPU, 17.5 GiB:
27.1x / 27.1x. Our time swings with the VM's memory by 1-3 s (a process's first touch of fresh
memory costs ~2 s of kernel time per GiB here). The same scores in every layout and run; the
model's DES, PDS, MAE within 5e-10 of cell-eval's. Generating the files
takes ~5 minutes once on idle cores (the dense and CSC rewrites under a minute each).
With `--rules 0.6 --ce-venv .venv --runs 1` (cell-eval 0.6.6, CSR, 2026-12-07): the same
agreement (1.1e-16, 0, 4.4e-10), vccjax 23.4 s / 39.9 s CPU, cell-eval 0.6.6 2,287.8 s / 4,391.3
s CPU (97.9x wall).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import anndata as ad  # noqa: E402

import h5ad_layouts  # noqa: E402
from vccjax.data.writer import write_h5ad_atomic  # noqa: E402

CONTROL = "non-targeting"


def gene_means(n_genes: int, rng) -> np.ndarray:
  """[genes] mean UMI per gene: log-normal, ~50k UMI per cell summed over 18,080 genes."""
  base = np.exp(rng.normal(-1.3, 1.9, n_genes))
  return base * (50_000 * n_genes / 18_080) / base.sum()


def write_screen(path, *, n_perts, cells_per_pert, n_controls, n_genes, seed,
                 effect_scale=1.0, effect_noise=0.0, chunk=2_000):
  """Writes a screen of NB counts (shape 5) to `path`; the same seed picks the same targets.

  Each perturbation shifts 5% of genes by N(0, 1) log fold changes (times `effect_scale`, plus
  N(0, effect_noise)) and knocks its own gene down to 10%; each cell has a log-normal size.
  """
  design = np.random.default_rng(1234)  # targets and true effects: shared by real and pred
  base = gene_means(n_genes, design)
  genes = np.array([f"G{i:05d}" for i in range(n_genes)])
  targets = genes[design.choice(n_genes, n_perts, replace=False)]
  rng = np.random.default_rng(seed)
  groups = [(CONTROL, base, n_controls)]
  for t in targets:
    hit = design.random(n_genes) < 0.05
    lfc = np.where(hit, design.normal(0, 1, n_genes) * effect_scale
                   + rng.normal(0, effect_noise, n_genes), 0.0)
    mean = base * np.exp(lfc)
    mean[genes == t] *= 0.1
    groups.append((t, mean, cells_per_pert))
  blocks, labels = [], []
  for label, mean, n in groups:
    for start in range(0, n, chunk):
      m = min(chunk, n - start)
      size = np.exp(rng.normal(0, 0.3, m)).astype(np.float32)[:, None]
      lam = rng.gamma(5.0, (mean[None, :] * size / 5.0)).astype(np.float32)
      blocks.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
      labels += [label] * m
  # One contiguous write (anndata's layout for a whole matrix), like a real VCC file: files
  # appended chunk by chunk read several times slower, for every scorer.
  obs = pd.DataFrame({"target_gene": pd.Categorical(labels)},
                     index=[f"c{i}" for i in range(len(labels))])
  write_h5ad_atomic(ad.AnnData(X=sp.vstack(blocks, format="csr"), obs=obs,
                               var=pd.DataFrame(index=genes)), path)


def ensure_files(args) -> dict:
  """{"real", "pred", "train": paths in args.layout, "pert_counts": csv}, made once per cache."""
  tag = f"p{args.perts}_c{args.cells_per_pert}_n{args.controls}_g{args.genes}"
  directory = args.cache_dir or tempfile.mkdtemp(prefix="vcc_speed_")
  os.makedirs(directory, exist_ok=True)
  paths = {}
  for name, seed, scale, noise, perts in (("real", 0, 1.0, 0.0, args.perts),
                                          ("pred", 1, 0.7, 0.3, args.perts),
                                          ("train", 2, 1.0, 0.0, args.train_perts)):
    path = os.path.join(directory, f"{name}_{tag}.h5ad" if name != "train"
                        else f"{name}_p{perts}_{tag}.h5ad")
    if not os.path.exists(path):
      t = time.time()
      write_screen(path, n_perts=perts, cells_per_pert=args.cells_per_pert,
                   n_controls=args.controls, n_genes=args.genes, seed=seed,
                   effect_scale=scale, effect_noise=noise)
      print(f"wrote {path} in {time.time() - t:.0f} s", flush=True)
    if args.layout != "csr":
      csr_path, path = path, path.replace(".h5ad", f"_{args.layout}.h5ad")
      if not os.path.exists(path):
        t = time.time()
        h5ad_layouts.write_layout(csr_path, path, args.layout)
        print(f"wrote {path} in {time.time() - t:.0f} s", flush=True)
    paths[name] = path
  real = ad.read_h5ad(paths["real"], backed="r")
  targets = sorted(set(real.obs["target_gene"].astype(str)) - {CONTROL})
  paths["pert_counts"] = os.path.join(directory, f"pert_counts_{tag}.csv")
  pd.DataFrame({"target_gene": targets, "n_cells": args.cells_per_pert}).to_csv(
      paths["pert_counts"], index=False)
  return paths


def warm_page_cache(*paths):
  """Reads the files once so that neither scorer pays for the disk (the first would)."""
  for path in paths:
    with open(path, "rb") as f:
      while f.read(1 << 26):
        pass


def timed(cmd, cwd=None) -> tuple[dict, str]:
  """Runs `cmd` under `/usr/bin/time -v`: ({wall_s, cpu_s, peak_gib}, stdout).

  CPU seconds (user + system, all threads) are the fairer figure on a shared machine, where
  the wall time depends on what else runs.
  """
  t = time.time()
  proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=cwd)
  out, err = proc.communicate()
  wall = time.time() - t
  if proc.returncode:
    raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{err[-3000:]}")
  fields = dict(line.strip().rsplit(": ", 1) for line in err.splitlines()
                if line.startswith("\t") and ": " in line)
  return {"wall_s": wall,
          "cpu_s": float(fields["User time (seconds)"]) + float(fields["System time (seconds)"]),
          "peak_gib": int(fields["Maximum resident set size (kbytes)"]) / 2**20}, out


# Our flags for each cell-eval version's rules: 0.8 (per-perturbation FDR, no fold-change clip)
# and 0.6.6 with pdex 0.1.27 (global FDR, fold change of a zero mean clipped at 20: our default).
RULES = {"0.8": ["--fdr", "per_perturbation", "--fold-change-clip", "none"], "0.6": []}


def run_ours(paths, rules: str = "0.8") -> tuple[dict, dict]:
  """Our whole job in a cold process: `python -m vccjax.score` with the baseline built from the
  training file, under the `rules` of the cell-eval version it is compared with, so the
  model's scores compare with `cell-eval run`'s."""
  out = os.path.join(tempfile.mkdtemp(prefix="vccjax_"), "scores.json")
  cost, _ = timed([sys.executable, "-m", "vccjax.score", "--pred", paths["pred"], "--real",
                   paths["real"], "--train", paths["train"], "--pert-counts",
                   paths["pert_counts"], *RULES[rules], "--json", out], cwd=REPO)
  with open(out) as f:
    scores = json.load(f)
  return cost, dict(scores["model"], overall=scores["overall"])


def run_cell_eval(real, pred, threads, venv) -> tuple[dict, dict]:
  outdir = tempfile.mkdtemp(prefix="ce08_")
  cost, _ = timed([os.path.join(venv, "bin", "cell-eval"), "run", "-ap", pred, "-ar", real,
                    "--profile", "vcc", "--num-threads", str(threads), "-o", outdir])
  agg = pd.read_csv(os.path.join(outdir, "agg_results.csv")).set_index("statistic")
  means = {"des": float(agg.loc["mean", "overlap_at_N"]),
           "pds": float(agg.loc["mean", "discrimination_score_l1"]),
           "mae": float(agg.loc["mean", "mae"])}
  return cost, means


def _line(name, cost, means):
  return (f"{name:14}{cost['wall_s']:8.1f} s wall {cost['cpu_s']:8.1f} s CPU   peak RSS "
          f"{cost['peak_gib']:5.2f} GiB   {means}")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--perts", type=int, default=50)
  p.add_argument("--cells-per-pert", type=int, default=1000)
  p.add_argument("--controls", type=int, default=10_000)
  p.add_argument("--genes", type=int, default=18_080)
  p.add_argument("--train-perts", type=int, default=34,
                 help="perturbations of the training file (34: 44,000 cells with the controls)")
  p.add_argument("--layout", choices=("csr", "dense", "csc"), default="csr",
                 help="how X is stored in all three files")
  p.add_argument("--cache-dir", default=None, help="keep and reuse the generated files here")
  p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                 help="cell-eval's --num-threads (ours uses every CPU it may)")
  p.add_argument("--ce-venv", default=os.path.join(REPO, ".venv-ce08"),
                 help="the virtualenv of the cell-eval to compare with")
  p.add_argument("--rules", choices=sorted(RULES), default="0.8",
                 help="that cell-eval's version: 0.8 (.venv-ce08) or 0.6 (cell-eval 0.6.6, as "
                      "the project's own .venv has it: pass --ce-venv .venv)")
  p.add_argument("--runs", type=int, default=3,
                 help="cold processes of our job, one after another: each is printed, and the "
                      "ratio is given against the first and against the median (the first run "
                      "after the page-cache warm-up pays this VM's first touch of fresh memory)")
  p.add_argument("--skip-cell-eval", action="store_true")
  args = p.parse_args(argv)
  if args.runs < 1:
    p.error(f"--runs {args.runs}: give at least 1 run of our job")
  paths = ensure_files(args)
  real, pred = paths["real"], paths["pred"]
  print(f"shape: {args.perts} perturbations x {args.cells_per_pert} cells + {args.controls} "
        f"controls x {args.genes} genes, X {args.layout}; training file "
        f"{args.train_perts * args.cells_per_pert + args.controls} cells; load average "
        f"{os.getloadavg()[0]:.1f}", flush=True)
  warm_page_cache(real, pred, paths["train"])
  runs = []
  for i in range(args.runs):
    runs.append(run_ours(paths, args.rules))
    print(_line(f"vccjax run {i + 1}", *runs[-1]), flush=True)
  first = runs[0]
  median = sorted(runs, key=lambda run: run[0]["wall_s"])[len(runs) // 2]
  if any(scores != first[1] for _, scores in runs[1:]):
    sys.exit("our runs disagree with each other: " + "; ".join(str(s) for _, s in runs))
  if args.skip_cell_eval:
    return
  if not os.path.exists(os.path.join(args.ce_venv, "bin", "cell-eval")):
    sys.exit(f"no cell-eval in {args.ce_venv}: create it as .ci/run does, or --skip-cell-eval")
  warm_page_cache(real, pred)
  theirs = run_cell_eval(real, pred, args.threads, args.ce_venv)
  print(_line(f"cell-eval {args.rules}", *theirs))
  for name, (cost, _) in (("first run", first), (f"median of {len(runs)}", median)):
    print(f"ratio (cell-eval / vccjax {name}): wall {theirs[0]['wall_s'] / cost['wall_s']:.1f}x, "
          f"CPU {theirs[0]['cpu_s'] / cost['cpu_s']:.1f}x")
  print(f"load average now {os.getloadavg()[0]:.1f}")
  diff = {k: float(abs(first[1][k] - theirs[1][k])) for k in ("des", "pds", "mae")}
  print(f"|difference| of the means (both with cell-eval {args.rules}'s rules; every run of "
        f"ours gave the same scores): {diff}; "
        f"{'agree' if max(diff.values()) <= 1e-6 else 'DISAGREE'} to 1e-6")


if __name__ == "__main__":
  main()
