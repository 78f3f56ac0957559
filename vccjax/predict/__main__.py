"""`python -m vccjax.predict --workdir DIR --pert-counts C.csv --genes G.csv --out pred.h5ad`.

Writes a VCC submission from a trained run (see `vccjax.predict.submission`); `--vcc` then runs
`cell-eval prep` on it to make the `.vcc` file the challenge accepts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from vccjax.data import io
from vccjax.errors import InputError, cli_exit_on_input_error
from vccjax.predict import submission
from vccjax.predict import trained_run


def parse_args(argv=None):
  p = argparse.ArgumentParser(prog="python -m vccjax.predict", description=__doc__)
  p.add_argument("--workdir", required=True, help="the training run's workdir")
  p.add_argument("--pert-counts", required=True, help="csv: target_gene,n_cells[,...]")
  p.add_argument("--genes", required=True, help="gene list (one per line), the output order")
  p.add_argument("--out", required=True, help="output .h5ad")
  p.add_argument("--n-controls", type=int, default=None,
                 help="control cells to include (default: all training controls, capped so the "
                      "file stays within cell-eval's limit)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--allow-featureless", action="store_true",
                 help="predict targets no feature source knows from the model's 'no information' "
                      "input (the average effect) instead of stopping")
  p.add_argument("--vcc", action="store_true", help="also run `cell-eval prep` (.vcc file)")
  return p.parse_args(argv)


@cli_exit_on_input_error
def main(argv=None) -> dict:
  args = parse_args(argv)
  prep = cell_eval_executable() if args.vcc else None  # checked before the long prediction
  pert_counts = io.read_pert_counts(args.pert_counts)
  genes = io.read_gene_list(args.genes)
  exp, params, predict_fn = trained_run.load_trained(args.workdir, verbose=True)
  n_targets_cells = int(pert_counts.n_cells.sum())
  n_ctrl = len(exp.dataset.cells_of(exp.dataset.control_label))
  n_controls = args.n_controls if args.n_controls is not None else max(
      1, min(n_ctrl, submission.MAX_SUBMISSION_CELLS - n_targets_cells))
  summary = submission.write_submission(exp, predict_fn=predict_fn, params=params,
                                        pert_counts=pert_counts, genes=genes, out_path=args.out,
                                        n_controls=n_controls, seed=args.seed,
                                        allow_featureless=args.allow_featureless)
  print(f"[predict] wrote {summary['cells']:,} cells ({summary['targets']} targets + "
        f"{summary['controls']:,} controls) to {args.out} in {summary['seconds']:.1f}s")
  if args.vcc:
    summary["vcc"] = run_cell_eval_prep(args.out, args.genes, exe=prep)
  return summary


def cell_eval_executable() -> str:
  """The `cell-eval` command (beside this Python first, then on PATH), or a one-line error."""
  exe = shutil.which("cell-eval") or os.path.join(os.path.dirname(sys.executable), "cell-eval")
  if not os.path.exists(exe):
    raise InputError("--vcc", "cell-eval is not installed", "pip install cell-eval==0.6.6")
  return exe


def run_cell_eval_prep(pred_path: str, genes_path: str, exe: str | None = None) -> str:
  """Runs `cell-eval prep` (default: `cell_eval_executable()`); returns the .vcc path it wrote."""
  exe = exe or cell_eval_executable()
  proc = subprocess.run([exe, "prep", "-i", pred_path, "-g", genes_path], capture_output=True,
                        text=True)
  if proc.returncode != 0:
    raise InputError(pred_path, f"cell-eval prep failed: {proc.stderr.strip()[-500:]}",
                     "run `python -m vccjax.data.validate` on the file for details")
  vcc = os.path.splitext(pred_path)[0] + ".prep.vcc"
  print(f"[predict] cell-eval prep wrote {vcc}")
  return vcc


if __name__ == "__main__":
  main()
