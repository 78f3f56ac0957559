r"""Train-step throughput (cells/s) of a config's model, and its memory, on this machine.

  python benchmarks/train_speed.py                          # vcc size, random inputs
  python benchmarks/train_speed.py --variant=demo --steps=20
  python benchmarks/train_speed.py --data=/tmp/vcc_full.h5ad   # real pipeline on a full-shape
      file: load (backed), one train step, then predict 50 targets x 1,000 cells (all genes)

Prints step time, cells/s (perturbed cells predicted per second in training), the devices used
and the peak resident memory of the process. Runs on whatever JAX finds (CPU here, GPU/TPU when
present): `JAX_PLATFORMS=cpu` forces the CPU.

With `--data`, the file is loaded twice: cold (a new temporary prepared-data cache, unless
`--cache-dir`) and from the cache; `anndata.read_h5ad` of the same file, in its own process, is
the peer; `--from-disk` drops the file from the page cache before the peer and the cold load.
Measured on the full VCC shape (220,000 x 18,080, 50k UMI per cell, 18.5 GB) on 2 idle cores:
peer 40 s / 18.2 GiB; load 41-43 s cold, 3-4 s cached; one step 5 s; submission of 51,000
cells x 18,080 genes 99-101 s; peak RSS 4.2 GiB (README, "Training at scale"). (Before issue
16, at load ~5: load 953 s, prediction 780 s, peak 4.9 GiB.)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vccjax import config_file, models  # noqa: E402
from vccjax.models import ModelInputs  # noqa: E402
from vccjax.train import sharding, steps  # noqa: E402


def peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_seconds() -> float:
  """User + system CPU time of this process so far (steadier than wall time on a busy machine)."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def random_batch(config, *, n_in: int, n_genes: int, feat_dim: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  b, s = config.data.batch_size, config.data.set_size
  inputs = ModelInputs(
      control_expr=rng.gamma(0.5, 1.0, (b, s, n_in)).astype(np.float32),
      control_mask=np.ones((b, s), bool),
      pert_genes=rng.normal(size=(b, 1, feat_dim)).astype(np.float32),
      pert_gene_mask=np.ones((b, 1), bool),
      target_out_pos=rng.integers(0, n_genes, (b, 1)).astype(np.int32),
      prior_lfc=rng.normal(0, 0.05, (b, n_genes)).astype(np.float32))
  return steps.TrainBatch(inputs=inputs,
                          pert_expr=rng.gamma(0.5, 1.0, (b, s, n_in)).astype(np.float32),
                          pert_mask=np.ones((b, s), bool),
                          lfc=rng.normal(0, 0.05, (b, n_genes)).astype(np.float32))


def time_random_steps(config, *, n_in: int, n_genes: int, steps_to_time: int) -> dict:
  model = models.get_model(config.model.name, n_genes_out=n_genes,
                           **{k: v for k, v in config.model.to_dict().items() if k != "name"})
  mesh = sharding.make_mesh()
  opt = steps.make_optimizer(lr=1e-4, steps=1000, warmup_steps=10, weight_decay=0.0,
                             clip_norm=1.0)
  batch = random_batch(config, n_in=n_in, n_genes=n_genes, feat_dim=config.features.dim + 2)
  state = steps.init_state(model=model, optimizer=opt, example_inputs=batch.inputs,
                           key=jax.random.key(0))
  state = jax.device_put(state, sharding.replicated(mesh))
  fn = steps.make_train_step(model=model, optimizer=opt, in_genes=np.arange(n_in),
                             distribution=config.loss.distribution, distribution_weight=1.0,
                             pseudobulk_weight=1.0, state_sharding=sharding.replicated(mesh),
                             batch_sharding=sharding.data_sharded(mesh))
  key = jax.random.key(1)
  t0 = time.perf_counter()
  state, m = fn(state, sharding.put_batch(batch, mesh), key)
  jax.block_until_ready(m["loss"])
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(steps_to_time):
    state, m = fn(state, sharding.put_batch(batch, mesh), key)
  jax.block_until_ready(m["loss"])
  step_s = (time.perf_counter() - t0) / steps_to_time
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  return {"compile_s": compile_s, "step_s": step_s, "params": n_params,
          "cells_per_s": config.data.batch_size * config.data.set_size / step_s}


def available_memory() -> int:
  """Bytes of memory available to a new process (Linux's MemAvailable; free pages elsewhere)."""
  try:
    with open("/proc/meminfo") as f:
      return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
  except (OSError, StopIteration):
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def peer_read_h5ad(data_path: str) -> str:
  """`anndata.read_h5ad` of the file in a fresh process: its time and peak memory (skipped when
  the file is larger than the memory available now: it would be killed, or push others out)."""
  available = available_memory()
  if os.path.getsize(data_path) > 0.8 * available:
    return (f"skipped: the {os.path.getsize(data_path) / 2**30:.1f} GiB file does not fit in the "
            f"{available / 2**30:.1f} GiB of memory available")
  code = ("import resource, sys, time, anndata; t = time.perf_counter(); "
          "a = anndata.read_h5ad(sys.argv[1]); print(f'{time.perf_counter() - t:.0f}s, peak RSS "
          "{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB')")
  proc = subprocess.run([sys.executable, "-c", code, data_path], capture_output=True, text=True)
  return proc.stdout.strip() or f"failed: {proc.stderr.strip()[-300:]}"


def evict_from_page_cache(path: str) -> None:
  """Asks the kernel to drop the file's cached pages (posix_fadvise DONTNEED; no root needed),
  so the next read of it comes from the disk."""
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
  finally:
    os.close(fd)


def full_pipeline(config, data_path: str, n_targets: int, cells_per_target: int,
                  cache_dir: str, from_disk: bool) -> None:
  """Loads a full-shape file (cold, then from the cache), takes one train step, and streams a
  50-target prediction. `from_disk`: the file leaves the page cache before the peer's read and
  before the cold load."""
  import pandas as pd
  from vccjax.experiment import assembly, training_data
  from vccjax.predict import submission
  from vccjax.train import loop
  config.data.path = data_path
  config.data.val_fraction = 0.0
  config.features.sources = "control_pca"
  config.data.cache_dir = cache_dir
  if from_disk:
    evict_from_page_cache(data_path)
  print(f"peer anndata.read_h5ad: {peer_read_h5ad(data_path)}")
  for attempt in range(2):
    if from_disk and attempt == 0:
      evict_from_page_cache(data_path)
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    exp = assembly.Experiment.from_config(config, verbose=True)
    how = ("from the cache" if exp.dataset.prepared_from_cache else
           "cold, the file read from disk" if from_disk else "cold")
    print(f"load: {time.perf_counter() - t0:.0f}s ({how}; CPU {cpu_seconds() - cpu0:.0f}s), "
          f"peak RSS {peak_rss_gib():.1f} GiB")
  enc = exp.encode(exp.dataset.targets, allow_missing=True)
  sampler = training_data.make_sampler(exp, config)
  rows = training_data.sampler_rows(exp, sampler)
  batch = loop.to_train_batch(exp, enc, rows, sampler.sample(0))
  opt = loop.make_optimizer(config)
  state = steps.init_state(model=exp.model, optimizer=opt, example_inputs=batch.inputs,
                           key=jax.random.key(0))
  fn = steps.make_train_step(model=exp.model, optimizer=opt, in_genes=exp.in_genes,
                             distribution=config.loss.distribution, distribution_weight=1.0,
                             pseudobulk_weight=1.0)
  t0 = time.perf_counter()
  state, m = fn(state, batch, jax.random.key(1))
  print(f"one train step (with compile): {time.perf_counter() - t0:.0f}s, loss "
        f"{float(m['loss']):.4f}, peak RSS {peak_rss_gib():.1f} GiB")
  targets = exp.dataset.targets[:n_targets]
  counts = pd.DataFrame({"target_gene": targets, "n_cells": cells_per_target})
  with tempfile.TemporaryDirectory() as tmp:
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    summary = submission.write_submission(
        exp, predict_fn=steps.make_predict_step(exp.model), params=state.params,
        pert_counts=counts, genes=list(exp.dataset.gene_names), out_path=f"{tmp}/pred.h5ad",
        n_controls=1000, log=lambda *a: None)
    print(f"prediction: {summary['cells']:,} cells x {exp.dataset.n_genes:,} genes in "
          f"{time.perf_counter() - t0:.0f}s (CPU {cpu_seconds() - cpu0:.0f}s), peak RSS "
          f"{peak_rss_gib():.1f} GiB")


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--variant", default="vcc")
  p.add_argument("--genes", type=int, default=18_080, help="output genes (random inputs)")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--data", default="", help="a full-shape VCC-layout file: run the pipeline")
  p.add_argument("--targets", type=int, default=50)
  p.add_argument("--cells-per-target", type=int, default=1000)
  p.add_argument("--cache-dir", default="",
                 help="prepared-data cache (default: a new temporary one, so the first load is "
                      "cold and the second reads the cache)")
  p.add_argument("--from-disk", action="store_true",
                 help="drop the file from the page cache before the peer and the cold load")
  args = p.parse_args()
  config = config_file.load_config(variant=args.variant)
  print(f"devices: {jax.devices()}; variant {args.variant}: set {config.data.set_size} x batch "
        f"{config.data.batch_size}, hidden {config.model.hidden}, {config.model.layers} layers")
  if args.data:
    with tempfile.TemporaryDirectory() as tmp:
      full_pipeline(config, args.data, args.targets, args.cells_per_target,
                    args.cache_dir or tmp, args.from_disk)
    return
  r = time_random_steps(config, n_in=min(config.data.n_hvg, args.genes), n_genes=args.genes,
                        steps_to_time=args.steps)
  print(f"params {r['params'] / 1e6:.1f}M; compile {r['compile_s']:.1f}s; step "
        f"{r['step_s'] * 1e3:.0f} ms; {r['cells_per_s']:,.0f} cells/s; peak RSS "
        f"{peak_rss_gib():.1f} GiB")


if __name__ == "__main__":
  main()
