"""Speed and memory of writing a synthetic screen (default: the full VCC training shape).

  python benchmarks/synthetic_speed.py                    # 220,000 cells x 18,080 genes, ~50k UMI
  python benchmarks/synthetic_speed.py --cells 20000 --genes 2000

Writes into a temporary directory (deleted afterwards, unless --keep) and prints wall time,
throughput, file size and the peak resident memory of the writing process and of its workers.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

import h5py

from vccjax.data.synthetic import _progress_printer, write_synthetic


def _peak_rss_gib(who) -> float:
  return resource.getrusage(who).ru_maxrss / 2 ** 20  # Linux reports KiB


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--cells", type=int, default=220_000)
  p.add_argument("--genes", type=int, default=18_080)
  p.add_argument("--targets", type=int, default=150)
  p.add_argument("--batches", type=int, default=48)
  p.add_argument("--umi", type=float, default=50_000)
  p.add_argument("--chunk-size", type=int, default=256)
  p.add_argument("--workers", type=int, default=None)
  p.add_argument("--dir", default=None, help="where the temporary directory goes")
  p.add_argument("--keep", action="store_true", help="keep the file (prints its path)")
  a = p.parse_args(argv)

  directory = tempfile.mkdtemp(prefix="vccjax_synthetic_", dir=a.dir)
  path = f"{directory}/synthetic.h5ad"
  try:
    t0 = time.perf_counter()
    s = write_synthetic(path, n_cells=a.cells, n_genes=a.genes, n_targets=a.targets,
                        n_batches=a.batches, median_umi=a.umi, chunk_size=a.chunk_size,
                        workers=a.workers, progress=_progress_printer(every_s=30))
    seconds = time.perf_counter() - t0
    with h5py.File(path, "r") as f:
      shape = tuple(f["X"].attrs["shape"])
    print(f"shape {shape[0]:,} x {shape[1]:,}, {s.nnz:,} non-zeros "
          f"({s.nnz / (shape[0] * shape[1]):.0%}), median {s.median_umi:,.0f} UMI/cell")
    print(f"time {seconds:.1f} s ({a.cells / seconds:,.0f} cells/s), "
          f"file {s.n_bytes / 2 ** 30:.2f} GiB")
    print(f"peak RSS: writer {_peak_rss_gib(resource.RUSAGE_SELF):.2f} GiB, "
          f"largest worker {_peak_rss_gib(resource.RUSAGE_CHILDREN):.2f} GiB")
  finally:
    if a.keep:
      print(f"kept {path}")
    else:
      shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
  main()
