r"""Time and peak memory of preparing a full-VCC-shape file for training.

  python benchmarks/load_scale.py --path=/tmp/vcc_full.h5ad            # writes it first if absent
  python benchmarks/load_scale.py --cells=22000 --genes=18080            # a tenth, quicker

Writes (once) a synthetic VCC-layout file (default 220,000 cells x 18,080 genes, ~50k UMI per
cell, 150 targets, 48 batches), then runs `vccjax.data.dataset.load_dataset` on it in a fresh
process: three streaming passes (totals; moments, pseudobulks and fold changes of every target;
the normalised HVG matrix the model trains on). Prints the time and the peak resident memory
of that process; the file is read backed (on disk), never densified.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path: str, n_hvg: int) -> None:
  sys.path.insert(0, ROOT)
  from vccjax.data import dataset
  t0 = time.time()
  ds = dataset.load_dataset(path, n_hvg=n_hvg, verbose=True)
  seconds = time.time() - t0
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"loaded {len(ds.totals):,} cells x {ds.n_genes:,} genes -> HVG matrix "
        f"{ds.hvg_log1p.shape[0]:,} x {ds.hvg_log1p.shape[1]:,} in {seconds:.0f}s; "
        f"peak RSS {rss:.2f} GiB")


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--path", default="/tmp/vccjax_full_shape.h5ad")
  p.add_argument("--cells", type=int, default=220_000)
  p.add_argument("--genes", type=int, default=18_080)
  p.add_argument("--targets", type=int, default=150)
  p.add_argument("--umi", type=float, default=50_000)
  p.add_argument("--hvg", type=int, default=2000)
  p.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.load_only:
    load(args.path, args.hvg)
    return
  if not os.path.exists(args.path):
    sys.path.insert(0, ROOT)
    from vccjax.data import synthetic
    print(f"writing {args.cells:,} x {args.genes:,} synthetic cells to {args.path} ...")
    s = synthetic.write_synthetic(args.path, n_cells=args.cells, n_genes=args.genes,
                                  n_targets=args.targets, n_batches=48, median_umi=args.umi)
    print(f"  {s.nnz:,} stored counts, {s.n_bytes / 2**30:.1f} GiB, {s.seconds:.0f}s")
  # A fresh process, so the peak memory is the loader's alone.
  subprocess.run([sys.executable, __file__, "--load-only", f"--path={args.path}",
                  f"--hvg={args.hvg}"], check=True)


if __name__ == "__main__":
  main()
