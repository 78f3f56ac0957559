"""Runs the official cell-eval on scoring tasks and writes its numbers as JSON (a test helper).

  python cell_eval_reference.py TASKS.json OUT.json

Run by the tests with the interpreter of the virtualenv holding the cell-eval version to compare
with (0.6.6 in the project's, 0.8.x in `.venv-ce08`), in its own process: cell-eval's DE (pdex)
forks worker processes, which must not happen inside a test process that runs JAX threads.

Each task: {"name", "pred", "real", optional "train" + "pert_counts" (build the cell-mean
baseline with `build_base_mean_adata`, score it and the overall score), optional
"baseline_out" (where to write that baseline .h5ad)}. Output per task: {"per_perturbation":
{pert: {"des", "pds", "mae"}}, "means": {...}, and with a baseline "baseline_means",
"scores": {metric: from_baseline}, "baseline_X_head" (first baseline rows)}.
"""

import json
import logging
import os
import sys
import tempfile
import warnings

import anndata as ad
import numpy as np
import polars as pl
from cell_eval import MetricsEvaluator, build_base_mean_adata, score_agg_metrics

CONTROL = "non-targeting"
COLUMNS = {"overlap_at_N": "des", "discrimination_score_l1": "pds", "mae": "mae"}


def evaluate(pred, real, outdir):
  evaluator = MetricsEvaluator(adata_pred=pred, adata_real=real, control_pert=CONTROL,
                               pert_col="target_gene", num_threads=1, outdir=outdir)
  results, agg = evaluator.compute(profile="vcc", write_csv=False, break_on_error=True)
  per = {row["perturbation"]: {COLUMNS[c]: float(row[c]) for c in COLUMNS}
         for row in results.iter_rows(named=True)}
  means = {COLUMNS[c]: float(agg.filter(pl.col("statistic") == "mean")[c][0]) for c in COLUMNS}
  return per, means, agg


def run_task(task, workdir):
  out = {}
  real = ad.read_h5ad(task["real"])
  per, means, agg = evaluate(ad.read_h5ad(task["pred"]), real.copy(), workdir)
  out.update(per_perturbation=per, means=means)
  if "train" in task:
    base_path = task.get("baseline_out") or os.path.join(workdir, "baseline.h5ad")
    base = build_base_mean_adata(adata=task["train"], counts_df=task["pert_counts"],
                                 pert_col="target_gene", control_pert=CONTROL,
                                 output_path=base_path)
    base_per, base_means, base_agg = evaluate(ad.read_h5ad(base_path), real.copy(), workdir)
    scores = score_agg_metrics(results_user=agg, results_base=base_agg)
    out.update(baseline_per_perturbation=base_per, baseline_means=base_means,
               scores={r["metric"]: float(r["from_baseline"]) for r in scores.iter_rows(
                   named=True)},
               baseline_X_head=np.asarray(base.X[:3].toarray() if hasattr(base.X, "toarray")
                                          else base.X[:3], dtype=np.float64).tolist(),
               baseline_obs=base.obs["target_gene"].astype(str).tolist())
  return out


def main(tasks_path, out_path):
  warnings.filterwarnings("ignore")
  logging.disable(logging.WARNING)
  with open(tasks_path) as f:
    tasks = json.load(f)
  results = {}
  with tempfile.TemporaryDirectory() as workdir:
    for task in tasks:
      results[task["name"]] = run_task(task, workdir)
  with open(out_path, "w") as f:
    json.dump(results, f)


if __name__ == "__main__":
  main(*sys.argv[1:3])
