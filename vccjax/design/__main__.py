r"""Inverse design: which perturbation would a trained model say produces a wanted change?

  python -m vccjax.design --workdir DIR --signature wanted.csv [--log-base 2|e] \
      [--max-genes 2] [--candidates genes.txt] [--top 10] [--metric specific|cosine|l1]
  python -m vccjax.design --workdir DIR --signature cells.h5ad [--control-label non-targeting]

The signature is a csv `gene,log_fold_change` (log2 by default, as DE tools write; `--log-base e`
for natural log), or an `.h5ad` of raw counts whose non-control cells are compared with its
controls (natural-log fold change of mean normalised counts, as the model's training targets).
Every candidate single perturbation (default: every gene a feature source of the run knows) is
predicted from one fixed, seeded set of control cells and scored on the genes it shares with the
signature. The default `--metric specific` is the cosine between what is specific to the
candidate and to the signature: both taken relative to the model's typical perturbation (mean
prediction over a seeded sample of 1,024 genes), each gene scaled by how much predictions vary on
it, the typical effect's direction projected out (`candidates.Contrast`); `--metric cosine` is the
plain cosine of the mean predicted log fold change and the signature, `--metric l1` the mean
absolute difference (natural log). With `--max-genes 2`, all pairs of the best M singles
(`--pair-pool`, default M = 50: 1,225 pairs) are scored too and ranked with the singles.
"""

from __future__ import annotations

import argparse

from vccjax import atomic
from vccjax.data import io
from vccjax.design import candidates as candidates_lib
from vccjax.design import ranking
from vccjax.design import signature as signature_lib
from vccjax.errors import InputError, cli_exit_on_input_error


def format_table(ranked: list[ranking.Candidate], *, top: int, metric: str, log_base: str) -> str:
  """The best `top` candidates as text; fold changes shown in `log_base` ("2" or "e")."""
  unit = signature_lib.LOG_BASES[log_base]
  lfc = "log2FC" if log_base == "2" else "lnFC"
  head = f"L1 {lfc}" if metric == "l1" else metric
  lines = [f"{'rank':>4}  {'candidate':<22}{head:>10}  top matching genes "
           f"(predicted/wanted {lfc})"]
  for c in ranked[:top]:
    score = c.score / unit if metric == "l1" else c.score
    genes = ", ".join(f"{m.gene} ({m.predicted / unit:+.2f}/{m.wanted / unit:+.2f})"
                      for m in c.top_genes) or "-"
    lines.append(f"{c.rank:>4}  {c.target:<22}{score:>10.4f}  {genes}")
  return "\n".join(lines)


def parse_args(argv=None):
  p = argparse.ArgumentParser(prog="python -m vccjax.design", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", required=True, help="the trained run's workdir")
  p.add_argument("--signature", required=True,
                 help="csv gene,log_fold_change or .h5ad of raw counts (targets + controls)")
  p.add_argument("--log-base", choices=sorted(signature_lib.LOG_BASES), default="2",
                 help="base of the csv's log fold changes (default 2, as DE tools write)")
  p.add_argument("--control-label", default=None,
                 help="controls in an h5ad signature (default: the run's control label)")
  p.add_argument("--max-genes", type=int, default=1, help="1: singles; 2: also pairs")
  p.add_argument("--pair-pool", type=int, default=ranking.DEFAULT_PAIR_POOL,
                 help="pairs are formed from this many best singles")
  p.add_argument("--candidates", default=None, help="gene list file (one per line; A+B allowed)")
  p.add_argument("--top", type=int, default=10, help="candidates to print")
  p.add_argument("--metric", choices=candidates_lib.METRICS, default="specific",
                 help="specific (default): cosine of what is specific to each candidate; "
                 "cosine: of the raw predictions; l1: mean absolute difference")
  p.add_argument("--seed", type=int, default=0,
                 help="seed of the shared control cells and the reference genes")
  p.add_argument("--out", default=None, help="also write the whole ranking to this csv")
  return p.parse_args(argv)


@cli_exit_on_input_error
def main(argv=None) -> list[ranking.Candidate]:
  args = parse_args(argv)
  ranking.check_max_genes(args.max_genes)  # before loading the run, which takes seconds
  if args.top < 1 or args.pair_pool < 2:
    raise InputError("--top/--pair-pool", f"{args.top}/{args.pair_pool}",
                     "print at least 1 candidate; pair at least 2 singles")
  from vccjax.predict import trained_run  # after the cheap checks: loading the run takes seconds
  config = trained_run.load_config(args.workdir)
  signature = signature_lib.read_signature(
      args.signature, log_base=args.log_base,
      control_label=args.control_label or config.data.control_label,
      pseudocount=config.data.get("lfc_pseudocount", 1.0))
  # The model's output genes are the training file's: a signature sharing none stops here.
  model_genes = io.read_h5ad(config.data.path, backed=True).var_names
  signature_lib.match_signature(signature, model_genes, where=args.signature)
  candidates = io.read_gene_list(args.candidates) if args.candidates else None
  exp, params, _ = trained_run.load_trained(args.workdir)
  candidates = candidates or candidates_lib.known_genes(exp)
  ranked = ranking.rank_candidates(exp, params, signature=signature, candidates=candidates,
                                   max_genes=args.max_genes, metric=args.metric,
                                   pair_pool=args.pair_pool, seed=args.seed)
  shown_base = "2" if args.signature.endswith(".h5ad") else args.log_base
  print(format_table(ranked, top=args.top, metric=args.metric, log_base=shown_base))
  if args.out:
    write_ranking(ranked, args.out)
  return ranked


def write_ranking(ranked: list[ranking.Candidate], path: str) -> None:
  atomic.write_text(path, "rank,candidate,score,top_genes\n" + "".join(
      f"{c.rank},{c.target},{c.score:.6g},{';'.join(m.gene for m in c.top_genes)}\n"
      for c in ranked))


if __name__ == "__main__":
  main()
