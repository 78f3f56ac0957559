"""Small synthetic VCC-layout screens for the evaluator tests, and a runner for cell-eval.

A screen: perturbation `p` targets gene `G00p` (so PDS drops a real gene), shifts a quarter of
the genes by log-normal fold changes and knocks its target down; the last `null_perts` are
copies of the control cells (an empty true DE set, whatever the seed); counts are Poisson, so
zeros and other ties abound. Screens with the same `design_seed` share perturbations and true
effects; `effect_scale` exaggerates or shrinks them (a prediction with more DE genes than the
truth).
"""

import json
import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

CONTROL = "non-targeting"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV_CE08_PYTHON = os.path.join(REPO, ".venv-ce08", "bin", "python")


def screen(*, seed: int, n_perts: int = 8, cells: int = 40, controls: int = 80,
           n_genes: int = 200, effect_scale: float = 1.0, null_perts: int = 1,
           design_seed: int = 7) -> ad.AnnData:
  """Raw-count screen [cells, n_genes] (CSR float32), cells in random order."""
  design = np.random.default_rng(design_seed)
  base = np.exp(design.normal(0.0, 1.5, n_genes))
  hits = design.random((n_perts, n_genes)) < 0.25
  lfc = design.normal(0.0, 1.2, (n_perts, n_genes))
  genes = [f"G{i:03d}" for i in range(n_genes)]
  rng = np.random.default_rng(seed)
  blocks, labels = [rng.poisson(base, (controls, n_genes))], [CONTROL] * controls
  for p in range(n_perts):
    if p >= n_perts - null_perts:  # a copy of the controls: every p-value is 1
      blocks.append(blocks[0].copy())
      labels += [genes[p]] * controls
      continue
    mean = base * np.exp(effect_scale * lfc[p] * hits[p])
    mean[p] *= 0.1
    blocks.append(rng.poisson(mean, (cells, n_genes)))
    labels += [genes[p]] * cells
  order = rng.permutation(len(labels))  # cells interleaved, as in real files
  x = np.vstack(blocks)[order].astype(np.float32)
  obs = pd.DataFrame({"target_gene": np.array(labels)[order]},
                     index=[f"cell{i}" for i in range(len(labels))])
  return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))


def as_log1p(adata: ad.AnnData, *, dense: bool = True) -> ad.AnnData:
  """The same cells as log1p(counts per 10k) floats: a prediction written on the log1p scale."""
  x = adata.X.toarray().astype(np.float64)
  x = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
  return ad.AnnData(X=x if dense else sp.csr_matrix(x), obs=adata.obs.copy(),
                    var=adata.var.copy())


def write(adata: ad.AnnData, path) -> str:
  adata.write_h5ad(path)
  return str(path)


def run_cell_eval(tasks: list[dict], workdir, python: str = sys.executable) -> dict:
  """Runs `cell_eval_reference.py` on `tasks` with `python` (whose venv picks the version)."""
  tasks_path, out_path = os.path.join(workdir, "tasks.json"), os.path.join(workdir, "ce.json")
  with open(tasks_path, "w") as f:
    json.dump(tasks, f)
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  proc = subprocess.run([python, os.path.join(HERE, "cell_eval_reference.py"), tasks_path,
                         out_path], capture_output=True, text=True, timeout=900, env=env)
  if proc.returncode:
    raise AssertionError(f"cell-eval reference run failed:\n{proc.stderr[-4000:]}")
  with open(out_path) as f:
    return json.load(f)
