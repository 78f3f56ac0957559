"""Score a VCC prediction file against the real cells, as the VCC 2025 leaderboard does.

  python -m vccjax.score --pred P.h5ad --real R.h5ad \\
      (--train T.h5ad --pert-counts C.csv | --baseline B.h5ad) \\
      [--fdr global|per_perturbation] [--control-label L] [--json OUT]

Prints the raw, baseline and baseline-scaled DES, PDS and MAE and the overall score (cell-eval
0.6.6 + pdex 0.1.27 rules by default). The baseline is the cell-mean baseline, either built here
from a training file and a `pert_counts` table (as `cell-eval baseline` builds it) or read from
a file `cell-eval baseline` wrote. Each file (X dense, CSR or CSC; counts or log1p) is read,
scaled and summarised in pieces, never whole (memory: about 4 bytes per nonzero value of the file
being summarised; the real and predicted files are summarised one after the other; a baseline
built here is ranked in closed form, its cells never formed). `--json` also writes a per-perturbation table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys

from vccjax import atomic, compilation_cache
from vccjax import metrics
from vccjax.data import io
from vccjax.errors import InputError, cli_exit_on_input_error
from vccjax.score import file_scores


def format_report(scores: dict) -> str:
  """The three metrics (model, baseline, scaled) and the overall score, as text."""
  s = scores["scaled"]
  lines = [f"{'':6}{'model':>10}{'baseline':>10}{'scaled':>10}"]
  for m in ("des", "pds", "mae"):
    lines.append(f"{m.upper():6}{s[m]:10.4f}{s[m + '_baseline']:10.4f}{s[m + '_scaled']:10.4f}")
  lines.append(f"overall score: {scores['overall']:.2f}  "
               f"({len(scores['per_perturbation'])} perturbations, FDR "
               f"{scores['settings']['fdr']})")
  return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m vccjax.score", description=__doc__.split("\n")[0])
  p.add_argument("--pred", required=True, help="predicted cells (.h5ad, counts or log1p)")
  p.add_argument("--real", required=True, help="real cells (.h5ad), with controls")
  p.add_argument("--train", help="training cells (.h5ad), to build the cell-mean baseline")
  p.add_argument("--pert-counts", help="VCC pert_counts csv (target_gene,n_cells) for --train")
  p.add_argument("--baseline", help="a baseline .h5ad written by `cell-eval baseline`")
  p.add_argument("--fdr", choices=metrics.FDR_MODES, default="global",
                 help="Benjamini-Hochberg over all tests (VCC 2025) or per perturbation "
                      "(cell-eval >= 0.7)")
  p.add_argument("--fold-change-clip", default="20",
                 help="fold change of a zero mean: 20 (VCC 2025) or 'none' (cell-eval >= 0.7)")
  p.add_argument("--control-label", default=io.CONTROL_LABEL)
  p.add_argument("--json", help="also write the scores and a per-perturbation table here")
  args = p.parse_args(argv)
  if (args.train is None) != (args.pert_counts is None) or \
     (args.baseline is None) == (args.train is None):
    p.error("give either --baseline B.h5ad, or --train T.h5ad with --pert-counts C.csv")
  try:
    args.fold_change_clip = (None if args.fold_change_clip.lower() == "none"
                             else float(args.fold_change_clip))
  except ValueError:
    p.error(f"--fold-change-clip must be a number or 'none', not {args.fold_change_clip!r}")
  return args


def prepare_json_directory(path: str) -> None:
  """Creates the directory of the `--json` file before scoring (minutes), so that the scores
  are never lost to a missing or unwritable directory after them."""
  directory = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise InputError(f"--json {path}", f"cannot create its directory ({e.strerror})",
                     "pass a path in a directory you can write") from e
  if not os.access(directory, os.W_OK):
    raise InputError(f"--json {path}", f"its directory {directory} is not writable",
                     "pass a path in a directory you can write")


@cli_exit_on_input_error
def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.json:
    prepare_json_directory(args.json)
  # The ~180,000 objects of the imports (JAX's mostly) live to the end: the collector need not
  # walk them at every full collection while the files are summarised (~2% of the CPU time).
  gc.freeze()
  scores = file_scores.score_files(pred_path=args.pred, real_path=args.real, train_path=args.train,
                                   pert_counts_path=args.pert_counts, baseline_path=args.baseline,
                                   fdr=args.fdr, control_label=args.control_label,
                                   fold_change_clip=args.fold_change_clip)
  print(format_report(scores))
  if args.json:
    atomic.write_text(args.json, json.dumps(scores, indent=1))
  return scores


if __name__ == "__main__":
  compilation_cache.use_for_commands()  # the evaluator compiled once per machine, not per run
  main(sys.argv[1:])
