r"""Set-sampler throughput with the input genes streamed from the file vs densified in memory.

  python benchmarks/stream_speed.py --data=/tmp/cells200k_umi5k.h5ad --write   # ~6 min to write
  python benchmarks/stream_speed.py --data=/tmp/cells200k_umi5k.h5ad [--cold]

`--write` first writes a synthetic VCC-layout screen (default 200,000 cells x 18,080 genes at a
median 5,000 UMI: ~3,100 stored values per cell, a 5 GB file, 14.5 GB densified; the real VCC
file has 220,000 cells at ~50,000 UMI, 17 GB). Each mode runs in its own subprocess, for a clean
peak RSS: load the file backed (X stays on disk) and either densify the cells x 2,000 input-gene
matrix (`stream=False`, 0.8 GB per 100,000 cells) or stream it (`stream=True`: the same rows go
to an unlinked file in `$TMPDIR`, only the control cells' rows stay in memory), then time
`--steps` batches of the `vcc` config's sampler (8 sets of 128 perturbed + 128 control cells)
over all cells, as the median of rounds of 20 batches. The streamed rows file is first read
through once, so the page cache holds it (as after a few hundred steps, where memory allows);
`--cold` instead drops it from the page cache (posix_fadvise, this file only) before every
round, so streamed reads come from the disk.

Prints per mode: load time, ms per batch, sets/s, perturbed cells/s, peak RSS; then the ratio.

Measured on the 2-core development VM (shared, load ~5, figures +-25%), 200,000 x 18,080 at
5,000 UMI, three runs:
  in memory  8.5-9.4 ms/batch (109,000-120,000 cells/s), peak RSS 2.39 GiB (1.49 GiB inputs)
  streamed  11.2-14.3 ms/batch (72,000-91,000 cells/s), peak RSS 1.13 GiB (0.15 GiB controls)
  -> 0.60x, 0.68x, 0.83x the throughput at 0.47x the memory (goal: 0.5x); load times alike
  (35-55 s: the streamed mode writes its 1.5 GiB rows file in the pass that densifies the other).
  With `--cold`: 34 ms/batch (1,024 random 8 KB disk reads on 8 threads; 0.18x). Per streamed
  batch: ~5 ms drawing the plan (both modes), ~1.5 ms copying the controls from memory, ~4 ms
  reading 1,024 perturbed cells' rows. Before the rows file (reading the counts file per step):
  28 ms/batch (0.21x), 162 ms cold (one drop before all steps).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vccjax import config_file  # noqa: E402
from vccjax.data import dataset, sampler, synthetic  # noqa: E402


def peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def drop_page_cache(fd: int) -> None:
  os.fdatasync(fd)  # dirty pages are not dropped
  os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def fill_page_cache(fd: int) -> None:
  """Reads a file through once (64 MiB at a time, outside the process's memory)."""
  block = bytearray(64 * 2**20)
  at = 0
  while n := os.preadv(fd, [block], at):
    at += n


def time_mode(*, data: str, stream: bool, steps: int, cold: bool) -> dict:
  """Loads `data` in one mode and times the vcc sampler: one JSON-able dict of figures."""
  config = config_file.load_config(variant="vcc")
  t0 = time.perf_counter()
  ds = dataset.load_dataset(data, n_hvg=config.data.n_hvg, backed=True, stream=stream)
  load_s = time.perf_counter() - t0
  sets = sampler.SetSampler(
      expr=ds.hvg_log1p, target_gene=ds.labels.target_gene, context=ds.context,
      cells=np.arange(len(ds.context)), targets=ds.targets, control_label=ds.control_label,
      set_size=config.data.set_size, batch_size=config.data.batch_size, seed=0)
  sets.sample(0)  # warm-up
  if stream and not cold:  # just written, and on a busy machine partly evicted already
    fill_page_cache(ds.hvg_log1p.fileno())
  # The median of rounds of 20 batches: a shared machine's load comes and goes within seconds.
  rounds = []
  for first in range(1, steps + 1, 20):
    if stream and cold:  # every round from the disk
      drop_page_cache(ds.hvg_log1p.fileno())
    t0 = time.perf_counter()
    for step in range(first, min(first + 20, steps + 1)):
      sets.sample(step)
    rounds.append((time.perf_counter() - t0) / (step - first + 1))
  step_s = float(np.median(rounds))
  b, s = config.data.batch_size, config.data.set_size
  held = ds.hvg_log1p.nbytes_cached if stream else ds.hvg_log1p.nbytes
  return {"mode": "streamed" if stream else "in memory", "load_s": load_s,
          "step_ms": step_s * 1e3, "sets_per_s": b / step_s, "cells_per_s": b * s / step_s,
          "input_gib": held / 2**30, "peak_rss_gib": peak_rss_gib(),
          "cells": len(ds.context), "genes": ds.n_genes, "n_in": len(ds.hvg)}


def run_child(args, stream: bool) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), f"--data={args.data}",
         f"--steps={args.steps}", f"--child={'stream' if stream else 'memory'}"]
  cmd += ["--cold"] if args.cold else []
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if proc.returncode:
    raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data", required=True, help="VCC-layout .h5ad (raw counts, CSR)")
  p.add_argument("--write", action="store_true", help="write a synthetic --data first if absent")
  p.add_argument("--cells", type=int, default=200_000)
  p.add_argument("--genes", type=int, default=18_080)
  p.add_argument("--umi", type=float, default=5_000)
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--cold", action="store_true", help="streamed reads from disk, not page cache")
  p.add_argument("--child", choices=["memory", "stream"], help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    print(json.dumps(time_mode(data=args.data, stream=args.child == "stream", steps=args.steps,
                               cold=args.cold)))
    return
  if args.write and not os.path.exists(args.data):
    print(f"writing {args.cells:,} cells x {args.genes:,} genes at {args.umi:,.0f} UMI to "
          f"{args.data}", flush=True)
    synthetic.write_synthetic(args.data, n_cells=args.cells, n_genes=args.genes, n_targets=150,
                              n_batches=48, median_umi=args.umi, seed=0)
  rows = [run_child(args, stream) for stream in (False, True)]
  first = rows[0]
  print(f"{args.data}: {first['cells']:,} cells x {first['genes']:,} genes, "
        f"{os.path.getsize(args.data) / 2**30:.1f} GiB on disk; {first['n_in']} input genes; "
        f"vcc sampler (set 128 x batch 8){', cold page cache' if args.cold else ''}")
  print(f"{'mode':<10}{'load s':>8}{'ms/batch':>10}{'sets/s':>9}{'cells/s':>10}"
        f"{'inputs GiB':>12}{'peak RSS GiB':>14}")
  for r in rows:
    print(f"{r['mode']:<10}{r['load_s']:8.1f}{r['step_ms']:10.1f}{r['sets_per_s']:9.0f}"
          f"{r['cells_per_s']:10.0f}{r['input_gib']:12.2f}{r['peak_rss_gib']:14.2f}")
  print(f"streamed / in memory: {rows[1]['cells_per_s'] / rows[0]['cells_per_s']:.2f}x the "
        f"throughput, {rows[1]['peak_rss_gib'] / rows[0]['peak_rss_gib']:.2f}x the peak RSS")


if __name__ == "__main__":
  main()
