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
it, the typical effect's direction projected out (`design_score.Contrast`); `--metric cosine` is
the plain cosine of the mean predicted log fold change and the signature, `--metric l1` the mean
absolute difference (natural log). With `--max-genes 2`, all pairs of the best M singles
(`--pair-pool`, default M = 50: 1,225 pairs) are scored too and ranked with the singles.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from typing import NamedTuple

from vccjax import design_score
from vccjax import logbook
from vccjax import design_signature
from vccjax.data import io
from vccjax.data import targets as targets_lib
from vccjax.errors import InputError, cli_exit_on_input_error

DEFAULT_PAIR_POOL = 50  # M best singles whose M(M-1)/2 pairs are scored (1,225 for 50)


class GeneMatch(NamedTuple):
  """A gene where prediction and signature agree; fold changes in natural log."""
  gene: str
  predicted: float
  wanted: float


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A ranked perturbation.

  Attributes:
    target: `GENE` or `GENE1+GENE2`.
    rank: 1 = closest to the signature.
    score: cosine similarity, "specific" or plain (higher is closer), or mean |predicted -
      wanted| in natural-log units (lower is closer), over the signature's measured genes.
    top_genes: up to 5 genes where the predicted and wanted changes agree most (largest product
      of the compared values, only same-direction genes; for "specific", direction relative to
      the typical perturbation).
  """
  target: str
  rank: int
  score: float
  top_genes: tuple[GeneMatch, ...]


def rank_candidates(exp, params, *, signature: dict[str, float], candidates: list[str],
                    max_genes: int = 1, metric: str = "specific",
                    pair_pool: int = DEFAULT_PAIR_POOL, seed: int = 0, n_top_genes: int = 5,
                    own_genes: bool = True, chunk_size: int | None = None,
                    log=print) -> list[Candidate]:
  """Every candidate (and, with max_genes=2, pairs of the best singles), best first.

  Args:
    exp, params: a trained run (`vccjax.restore.load_trained`).
    signature: {gene: wanted natural-log fold change}; genes the model does not measure are
      reported through `log` and left out of the score.
    candidates: genes (or explicit `A+B` targets) to score; featureless ones are reported, skipped.
    max_genes: 1 (singles) or 2 (also all pairs of the `pair_pool` best singles).
    metric: "specific", "cosine" or "l1" (module docstring).
    seed: seed of the control set shared by all candidates and of the reference genes.
    own_genes: False leaves out the model's explicit change of each candidate's own gene(s)
      (downstream effects only; e.g. for knockouts that do not lower the transcript).
    chunk_size: candidates per jitted call (default: from the model's output size).
  Returns:
    All scored candidates, ties broken by name.
  """
  log = log or (lambda *a, **k: None)
  _check_max_genes(max_genes)
  if max_genes > exp.max_genes:
    raise InputError("--max-genes", f"the run's model takes at most {exp.max_genes} gene(s) per "
                     "perturbation", "retrain with --config.data.max_genes_per_target=2")
  matched = design_signature.match_signature(signature, exp.dataset.gene_names)
  log(f"[design] signature: {len(signature):,} genes, {len(matched.genes):,} measured by the "
      f"model" + (f"; not measured (left out): {len(matched.missing):,}, e.g. "
                  f"{', '.join(matched.missing[:8])}" if matched.missing else ""))
  controls = design_score.control_set(exp, seed=seed)
  t0 = time.time()
  contrast = None
  if metric == "specific":
    contrast = design_score.reference_contrast(exp, params, controls=controls,
                                               columns=matched.columns, seed=seed,
                                               own_genes=own_genes, chunk_size=chunk_size)
  score = lambda targets: _score(exp, params, targets=targets, matched=matched,
                                 controls=controls, metric=metric, contrast=contrast,
                                 own_genes=own_genes, n_top=n_top_genes,
                                 chunk_size=chunk_size, log=log)
  ranked = score(sorted(set(candidates)))
  seconds = time.time() - t0
  log(f"[design] {len(ranked):,} candidates scored in {seconds:.2f}s "
      f"({len(ranked) / max(seconds, 1e-9):,.0f}/s" +
      (", the typical perturbation's reference genes included)" if contrast else ")"))
  if max_genes == 2:
    singles = [c.target for c in ranked if "+" not in c.target][:pair_pool]
    given = {frozenset(targets_lib.genes_of(c.target)) for c in ranked}
    pairs = ["+".join(p) for p in itertools.combinations(sorted(singles), 2)
             if frozenset(p) not in given]
    t0 = time.time()
    ranked = _rank(ranked + (score(pairs) if pairs else []), metric)
    log(f"[design] {len(pairs):,} pairs of the best {len(singles)} singles scored in "
        f"{time.time() - t0:.2f}s")
  return ranked


def _check_max_genes(max_genes: int) -> None:
  if max_genes not in (1, 2):
    raise InputError("--max-genes", f"{max_genes}", "use 1 (singles) or 2 (also pairs)")


def _score(exp, params, *, targets, matched, controls, metric, contrast, own_genes, n_top,
           chunk_size, log):
  feats, featureless = design_score.candidate_features(exp, targets)
  if featureless:
    log(f"[design] {len(featureless):,} candidates skipped: no features from {feats.sources}, "
        f"e.g. {', '.join(featureless[:5])}")
    skipped = set(featureless)
    targets = [t for t in targets if t not in skipped]
  if not targets:
    raise InputError("--candidates", "no candidate has perturbation features",
                     "give genes that the run's feature sources know")
  out = design_score.score_targets(exp, params, targets=targets, feats=feats, controls=controls,
                                   columns=matched.columns, wanted=matched.wanted, metric=metric,
                                   n_top=n_top, contrast=contrast, own_genes=own_genes,
                                   chunk_size=chunk_size)
  found = [Candidate(target=t, rank=0, score=float(out.score[i]),
                     top_genes=_matches(matched, out.top_idx[i], out.top_pred[i]))
           for i, t in enumerate(targets)]
  return _rank(found, metric)


def _matches(matched, top_idx, top_pred) -> tuple[GeneMatch, ...]:
  return tuple(GeneMatch(matched.genes[j], float(p), float(matched.wanted[j]))
               for j, p in zip(top_idx, top_pred) if j >= 0)


def _rank(found: list[Candidate], metric: str) -> list[Candidate]:
  sign = 1.0 if metric == "l1" else -1.0
  order = sorted(found, key=lambda c: (sign * c.score, c.target))
  return [dataclasses.replace(c, rank=i + 1) for i, c in enumerate(order)]


def format_table(ranked: list[Candidate], *, top: int, metric: str, log_base: str) -> str:
  """The best `top` candidates as text; fold changes shown in `log_base` ("2" or "e")."""
  unit = design_signature.LOG_BASES[log_base]
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
  p.add_argument("--log-base", choices=sorted(design_signature.LOG_BASES), default="2",
                 help="base of the csv's log fold changes (default 2, as DE tools write)")
  p.add_argument("--control-label", default=None,
                 help="controls in an h5ad signature (default: the run's control label)")
  p.add_argument("--max-genes", type=int, default=1, help="1: singles; 2: also pairs")
  p.add_argument("--pair-pool", type=int, default=DEFAULT_PAIR_POOL,
                 help="pairs are formed from this many best singles")
  p.add_argument("--candidates", default=None, help="gene list file (one per line; A+B allowed)")
  p.add_argument("--top", type=int, default=10, help="candidates to print")
  p.add_argument("--metric", choices=design_score.METRICS, default="specific",
                 help="specific (default): cosine of what is specific to each candidate; "
                 "cosine: of the raw predictions; l1: mean absolute difference")
  p.add_argument("--seed", type=int, default=0,
                 help="seed of the shared control cells and the reference genes")
  p.add_argument("--out", default=None, help="also write the whole ranking to this csv")
  return p.parse_args(argv)


@cli_exit_on_input_error
def main(argv=None) -> list[Candidate]:
  args = parse_args(argv)
  _check_max_genes(args.max_genes)  # before loading the run, which takes seconds
  if args.top < 1 or args.pair_pool < 2:
    raise InputError("--top/--pair-pool", f"{args.top}/{args.pair_pool}",
                     "print at least 1 candidate; pair at least 2 singles")
  from vccjax import restore  # after the cheap checks: loading the run takes seconds
  config = restore.load_config(args.workdir)
  signature = design_signature.read_signature(
      args.signature, log_base=args.log_base,
      control_label=args.control_label or config.data.control_label,
      pseudocount=config.data.get("lfc_pseudocount", 1.0))
  # The model's output genes are the training file's: a signature sharing none stops here.
  model_genes = io.read_h5ad(config.data.path, backed=True).var_names
  design_signature.match_signature(signature, model_genes, where=args.signature)
  candidates = io.read_gene_list(args.candidates) if args.candidates else None
  exp, params, _ = restore.load_trained(args.workdir)
  candidates = candidates or design_score.known_genes(exp)
  ranked = rank_candidates(exp, params, signature=signature, candidates=candidates,
                           max_genes=args.max_genes, metric=args.metric,
                           pair_pool=args.pair_pool, seed=args.seed)
  shown_base = "2" if args.signature.endswith(".h5ad") else args.log_base
  print(format_table(ranked, top=args.top, metric=args.metric, log_base=shown_base))
  if args.out:
    write_ranking(ranked, args.out)
  return ranked


def write_ranking(ranked: list[Candidate], path: str) -> None:
  logbook.write_text_atomic(path, "rank,candidate,score,top_genes\n" + "".join(
      f"{c.rank},{c.target},{c.score:.6g},{';'.join(m.gene for m in c.top_genes)}\n"
      for c in ranked))


if __name__ == "__main__":
  main()
