"""Synthetic CRISPRi screens in the VCC layout, of any size, with a known ground truth.

`generate_synthetic(...)` returns a small screen as an in-memory AnnData; `write_synthetic(path,
...)` streams one of any size (the full VCC shape: 220,000 cells x 18,080 genes at ~50k UMI per
cell) to an `.h5ad` in row chunks, in worker processes, with bounded memory. Both give the same
cells for the same arguments, whatever the chunk size or number of workers. The generative model
(gene programs, structured knockdown effects, NB counts) is in `synthetic_model.py`.

Layout: `X` raw counts (CSR float32), `obs` `target_gene` (`non-targeting` for controls, `A+B`
for doubles), `guide_id`, `batch`, `cell_type`; `var` index `SYN00001`..., `var['gene_id']`;
`uns['synthetic']` the ground truth (per-perturbation log fold changes, strengths, knockdowns).

  python -m vccjax.data.synthetic --out F.h5ad --cells 220000 --genes 18080 --targets 150 \
      --batches 48 [--umi 50000] [--seed 0] [--doubles 0] [--embeddings-out E.npz]
"""

from __future__ import annotations

import argparse
import collections
from concurrent import futures
import dataclasses
import multiprocessing
import os
import sys
import time
from typing import Callable, Iterator

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vccjax import atomic
from vccjax.data.io import CONTROL_LABEL
from vccjax.data.synthetic_model import (Biology, CellDesign, SyntheticModel, build_model,
                                         cell_design, gene_embeddings, sample_rows)
from vccjax.data.writer import H5adWriter
from vccjax.errors import InputError, cli_exit_on_input_error


@dataclasses.dataclass(frozen=True)
class Screen:
  """A planned synthetic screen: the model, who each cell is, and the seed of the cells' draws."""
  model: SyntheticModel
  design: CellDesign
  seed: int
  cell_type: str

  @property
  def n_cells(self) -> int:
    return len(self.design.batch)


def _check_args(*, n_cells, n_genes, n_targets, n_batches, control_fraction, median_umi,
                n_doubles, seed):
  def need(ok, where, problem, fix):
    if not ok:
      raise InputError(where, problem, fix)
  need(n_genes >= 10, f"n_genes={n_genes}", "too few genes", "use at least 10")
  need(1 <= n_targets <= n_genes // 2, f"n_targets={n_targets}",
       "targets must be 1 .. half the panel (they are chosen among better-expressed genes)",
       f"use at most {n_genes // 2} targets or more genes")
  need(n_batches >= 1, f"n_batches={n_batches}", "need at least one batch", "use >= 1")
  need(0 < control_fraction < 1, f"control_fraction={control_fraction}",
       "must lie strictly between 0 and 1", "e.g. 0.1")
  need(median_umi > 0, f"median_umi={median_umi}", "must be positive", "e.g. 50000")
  need(seed >= 0, f"seed={seed}", "must be non-negative", "use a seed >= 0")
  max_pairs = n_targets * (n_targets - 1) // 2
  need(0 <= n_doubles <= max_pairs, f"n_doubles={n_doubles}",
       f"{n_targets} targets make only {max_pairs} pairs", "use fewer doubles or more targets")
  n_control = int(round(control_fraction * n_cells))
  need(n_control >= n_batches, f"n_cells={n_cells}",
       f"{n_control} control cells cannot cover {n_batches} batches",
       "raise n_cells or control_fraction")
  n_groups = (n_targets + n_doubles) * n_batches
  need(n_cells - n_control >= n_groups, f"n_cells={n_cells}",
       f"{n_cells - n_control} perturbed cells cannot put every perturbation in every batch",
       f"use at least {n_groups + n_control} cells")


def plan_screen(*, n_cells: int, n_genes: int, n_targets: int, n_batches: int = 1,
                control_fraction: float = 0.1, median_umi: float = 50_000, n_doubles: int = 0,
                cell_type: str = "H1", biology: Biology = Biology(), seed: int = 0) -> Screen:
  """Draws the model and the cell design of a screen (no counts yet); args as generate_synthetic."""
  _check_args(n_cells=n_cells, n_genes=n_genes, n_targets=n_targets, n_batches=n_batches,
              control_fraction=control_fraction, median_umi=median_umi, n_doubles=n_doubles,
              seed=seed)
  model = build_model(n_genes=n_genes, n_targets=n_targets, n_batches=n_batches,
                      n_doubles=n_doubles, median_umi=median_umi, biology=biology, seed=seed)
  design = cell_design(model, n_cells=n_cells, control_fraction=control_fraction,
                       n_batches=n_batches, seed=seed)
  return Screen(model=model, design=design, seed=seed, cell_type=cell_type)


def var_frame(model: SyntheticModel) -> pd.DataFrame:
  """[genes] var: index = gene symbols, `gene_id` an Ensembl-like id."""
  ids = [f"ENSSYN{i + 1:011d}" for i in range(len(model.gene_names))]
  return pd.DataFrame({"gene_id": ids}, index=pd.Index(model.gene_names, name=None))


def _guide_pair(perturbation: str) -> str:
  """VCC-style dual-guide label: `T_P1P2_A|T_P1P2_B`; a double `A+B` gets one guide of each."""
  genes = perturbation.split("+")
  if len(genes) == 1:
    return f"{genes[0]}_P1P2_A|{genes[0]}_P1P2_B"
  return "|".join(f"{g}_P1P2_A" for g in genes)


def obs_frame(screen: Screen, start: int, stop: int) -> pd.DataFrame:
  """[stop - start] obs rows of cells start..stop-1 (object columns; the writer categorises)."""
  model, design = screen.model, screen.design
  n_batches = model.batch_log_center.shape[0]
  width = len(str(n_batches - 1))
  batch_names = np.array([f"batch_{b:0{width}d}" for b in range(n_batches)], dtype=object)
  labels = np.array([CONTROL_LABEL] + list(model.perturbations), dtype=object)
  guides = np.array([_guide_pair(p) for p in model.perturbations], dtype=object)
  p = design.perturbation[start:stop]
  control_guide = np.array([f"{CONTROL_LABEL}_{2 * g:05d}|{CONTROL_LABEL}_{2 * g + 1:05d}"
                            for g in np.maximum(design.guide[start:stop], 0)], dtype=object)
  return pd.DataFrame({
      "target_gene": labels[p + 1],
      "guide_id": np.where(p < 0, control_guide, guides[np.maximum(p, 0)]),
      "batch": batch_names[design.batch[start:stop]],
      "cell_type": np.full(stop - start, screen.cell_type, dtype=object),
  }, index=pd.Index([f"cell_{i:07d}" for i in range(start, stop)]))


def truth_uns(model: SyntheticModel, *, seed: int) -> dict:
  """The ground truth stored in `uns['synthetic']` (arrays, so it survives h5ad round trips)."""
  return {
      "perturbations": np.array(model.perturbations, dtype=str),
      "log_fold_change": model.log_effect.astype(np.float32),
      "strength": model.strength.astype(np.float32),
      "knockdown": model.knockdown.astype(np.float32),
      "median_umi": float(model.median_umi),
      "n_programs": int(model.loadings.shape[1]),
      "seed": int(seed),
  }


_WORKER_SCREEN: Screen | None = None  # Set once per worker process by `_init_worker`.


def _init_worker(screen: Screen) -> None:
  global _WORKER_SCREEN
  _WORKER_SCREEN = screen


def _worker_rows(start: int, stop: int) -> sp.csr_matrix:
  s = _WORKER_SCREEN
  return sample_rows(s.model, s.design, start=start, stop=stop, seed=s.seed)


def iter_chunks(screen: Screen, *, chunk_size: int,
                workers: int = 1) -> Iterator[tuple[int, int, sp.csr_matrix]]:
  """Yields `(start, stop, counts)` in row order; counts: [stop - start, genes] float32 CSR.

  With workers > 1, chunks are drawn in spawned processes, at most 2 per worker in flight, so
  memory stays bounded when writing is slower than drawing.
  """
  bounds = [(a, min(a + chunk_size, screen.n_cells)) for a in range(0, screen.n_cells, chunk_size)]
  workers = min(workers, len(bounds))
  if workers <= 1:
    for a, b in bounds:
      yield a, b, sample_rows(screen.model, screen.design, start=a, stop=b, seed=screen.seed)
    return
  # Spawned, not forked: the parent may hold JAX or BLAS threads that a fork would copy mid-use.
  context = multiprocessing.get_context("spawn")
  with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                   initargs=(screen,)) as pool:
    pending = collections.deque()
    try:
      for a, b in bounds:
        pending.append((a, b, pool.submit(_worker_rows, a, b)))
        if len(pending) >= 2 * workers:
          a0, b0, result = pending.popleft()
          yield a0, b0, result.result()
      while pending:
        a0, b0, result = pending.popleft()
        yield a0, b0, result.result()
    finally:  # e.g. the consumer failed: drop queued chunks instead of drawing them
      for _, _, result in pending:
        result.cancel()


def _default_workers() -> int:
  return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)


def generate_synthetic(*, n_cells: int, n_genes: int, n_targets: int, n_batches: int = 1,
                       control_fraction: float = 0.1, median_umi: float = 50_000,
                       n_doubles: int = 0, cell_type: str = "H1", biology: Biology = Biology(),
                       seed: int = 0, workers: int = 1) -> ad.AnnData:
  """A synthetic screen in memory (for small sizes; use `write_synthetic` for big ones).

  Args:
    n_cells: cells in all, controls included.
    n_genes: genes in the panel (`SYN00001`, ...).
    n_targets: single CRISPRi targets, genes of the panel.
    n_batches: batches; every perturbation and the controls appear in each.
    control_fraction: share of cells that are `non-targeting` controls.
    median_umi: median total UMI count of a control cell (VCC: ~50,000 on 18,080 genes).
    n_doubles: `A+B` double perturbations of pairs of the single targets.
    cell_type: the `obs['cell_type']` value.
    biology: knobs of the generative model (`synthetic_model.Biology`).
    seed: seed of everything; the same arguments give the same screen.
    workers: processes drawing cells (the result does not depend on it).

  Returns:
    AnnData [n_cells, n_genes]: `X` raw counts (CSR float32), obs/var in the VCC layout,
    `uns['synthetic']` the ground truth (see `truth_uns`).
  """
  screen = plan_screen(n_cells=n_cells, n_genes=n_genes, n_targets=n_targets,
                       n_batches=n_batches, control_fraction=control_fraction,
                       median_umi=median_umi, n_doubles=n_doubles, cell_type=cell_type,
                       biology=biology, seed=seed)
  chunks = [x for _, _, x in iter_chunks(screen, chunk_size=4096, workers=workers)]
  obs = obs_frame(screen, 0, screen.n_cells)
  for column in obs.columns:  # as H5adWriter stores them
    obs[column] = pd.Categorical(obs[column])
  return ad.AnnData(X=sp.vstack(chunks, format="csr", dtype=np.float32), obs=obs,
                    var=var_frame(screen.model), uns={"synthetic": truth_uns(screen.model,
                                                                             seed=seed)})


@dataclasses.dataclass(frozen=True)
class WriteSummary:
  """What `write_synthetic` wrote."""
  path: str
  n_cells: int
  n_genes: int
  nnz: int
  median_umi: float
  n_bytes: int
  seconds: float


def write_synthetic(path: str, *, n_cells: int, n_genes: int, n_targets: int,
                    n_batches: int = 1, control_fraction: float = 0.1,
                    median_umi: float = 50_000, n_doubles: int = 0, cell_type: str = "H1",
                    biology: Biology = Biology(), seed: int = 0, chunk_size: int = 256,
                    workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> WriteSummary:
  """Streams a synthetic screen to `path` (atomically); arguments as `generate_synthetic`.

  Args:
    chunk_size: cells per chunk; memory ~ (2 * workers + 2) chunks of ~20 MB at full depth.
    workers: processes drawing cells; default: the usable cores. The file does not depend on it.
    progress: called as `progress(cells_written, n_cells)` after each chunk.
  """
  if chunk_size < 1:
    raise InputError(f"chunk_size={chunk_size}", "must be positive", "e.g. 256")
  t0 = time.perf_counter()
  screen = plan_screen(n_cells=n_cells, n_genes=n_genes, n_targets=n_targets,
                       n_batches=n_batches, control_fraction=control_fraction,
                       median_umi=median_umi, n_doubles=n_doubles, cell_type=cell_type,
                       biology=biology, seed=seed)
  workers = _default_workers() if workers is None else workers
  totals, nnz = np.zeros(n_cells), 0
  with H5adWriter(path, var=var_frame(screen.model),
                  uns={"synthetic": truth_uns(screen.model, seed=seed)}) as writer:
    for start, stop, x in iter_chunks(screen, chunk_size=chunk_size, workers=workers):
      writer.append(x, obs_frame(screen, start, stop))
      totals[start:stop] = np.asarray(x.sum(axis=1)).ravel()
      nnz += x.nnz
      if progress is not None:
        progress(stop, n_cells)
  return WriteSummary(path=os.fspath(path), n_cells=n_cells, n_genes=n_genes, nnz=nnz,
                      median_umi=float(np.median(totals)), n_bytes=os.path.getsize(path),
                      seconds=time.perf_counter() - t0)


def write_embeddings(path: str, *, n_genes: int, n_targets: int, n_batches: int = 1,
                     median_umi: float = 50_000, n_doubles: int = 0,
                     biology: Biology = Biology(), seed: int = 0, dim: int = 32,
                     noise: float = 0.5) -> str:
  """Writes `genes` [genes] and `embeddings` [genes, dim] (see `gene_embeddings`) to an `.npz`.

  Model arguments must match the screen's, so the vectors view that screen's latent genes.
  """
  model = build_model(n_genes=n_genes, n_targets=n_targets, n_batches=n_batches,
                      n_doubles=n_doubles, median_umi=median_umi, biology=biology, seed=seed)
  with atomic.writing(path) as partial, open(partial, "wb") as f:
    np.savez(f, genes=model.gene_names.astype(str),
             embeddings=gene_embeddings(model, dim=dim, noise=noise, seed=seed))
  return path


def _progress_printer(stream=sys.stderr, every_s: float = 5.0) -> Callable[[int, int], None]:
  """A progress callback printing `cells written, rate, ETA` at most every `every_s` seconds."""
  t0 = time.perf_counter()
  last = [t0]

  def report(done: int, total: int) -> None:
    now = time.perf_counter()
    if now - last[0] < every_s and done < total:
      return
    last[0] = now
    rate = done / max(now - t0, 1e-9)
    print(f"  {done:,}/{total:,} cells  {rate:,.0f} cells/s  ETA {(total - done) / rate:,.0f} s",
          file=stream, flush=True)
  return report


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m vccjax.data.synthetic",
                              description="Write a synthetic CRISPRi screen in the VCC layout.")
  p.add_argument("--out", required=True, help="output .h5ad")
  p.add_argument("--cells", type=int, required=True)
  p.add_argument("--genes", type=int, required=True)
  p.add_argument("--targets", type=int, required=True)
  p.add_argument("--batches", type=int, default=1)
  p.add_argument("--umi", type=float, default=50_000, help="median UMIs of a control cell")
  p.add_argument("--control-fraction", type=float, default=0.1)
  p.add_argument("--doubles", type=int, default=0, help="A+B double perturbations")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--chunk-size", type=int, default=256)
  p.add_argument("--workers", type=int, default=None, help="default: usable cores")
  p.add_argument("--embeddings-out", default=None, help=".npz gene -> vector file (all genes)")
  p.add_argument("--embedding-dim", type=int, default=32)
  return p.parse_args(argv)


@cli_exit_on_input_error
def main(argv=None) -> WriteSummary:
  a = parse_args(argv)
  sizes = dict(n_genes=a.genes, n_targets=a.targets, n_batches=a.batches, median_umi=a.umi,
               n_doubles=a.doubles, seed=a.seed)
  summary = write_synthetic(a.out, n_cells=a.cells, control_fraction=a.control_fraction,
                            chunk_size=a.chunk_size, workers=a.workers,
                            progress=_progress_printer(), **sizes)
  if a.embeddings_out:
    write_embeddings(a.embeddings_out, dim=a.embedding_dim, **sizes)
  print(f"wrote {summary.path}: {summary.n_cells:,} cells x {summary.n_genes:,} genes, "
        f"{a.targets} targets + {a.doubles} doubles, {a.batches} batches, "
        f"median {summary.median_umi:,.0f} UMI/cell, {summary.nnz:,} non-zeros, "
        f"{summary.n_bytes / 1e9:.2f} GB in {summary.seconds:.1f} s"
        + (f"; embeddings {a.embeddings_out}" if a.embeddings_out else ""))
  return summary


if __name__ == "__main__":
  main()
