"""Ranking inverse-design candidates against a wanted signature, best first.

Every candidate single (and, with max_genes=2, every pair of the best singles) is predicted from
one seeded set of control cells and scored by `candidates`; the metrics are described in the
command's help (`python -m vccjax.design --help`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import NamedTuple

from vccjax.data import targets as targets_lib
from vccjax.design import candidates as candidates_lib
from vccjax.design import signature as signature_lib
from vccjax.errors import InputError

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
    exp, params: a trained run (`vccjax.predict.trained_run.load_trained`).
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
  check_max_genes(max_genes)
  if max_genes > exp.max_genes:
    raise InputError("--max-genes", f"the run's model takes at most {exp.max_genes} gene(s) per "
                     "perturbation", "retrain with --config.data.max_genes_per_target=2")
  matched = signature_lib.match_signature(signature, exp.dataset.gene_names)
  log(f"[design] signature: {len(signature):,} genes, {len(matched.genes):,} measured by the "
      f"model" + (f"; not measured (left out): {len(matched.missing):,}, e.g. "
                  f"{', '.join(matched.missing[:8])}" if matched.missing else ""))
  controls = candidates_lib.control_set(exp, seed=seed)
  t0 = time.time()
  contrast = None
  if metric == "specific":
    contrast = candidates_lib.reference_contrast(exp, params, controls=controls,
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


def check_max_genes(max_genes: int) -> None:
  if max_genes not in (1, 2):
    raise InputError("--max-genes", f"{max_genes}", "use 1 (singles) or 2 (also pairs)")


def _score(exp, params, *, targets, matched, controls, metric, contrast, own_genes, n_top,
           chunk_size, log):
  feats, featureless = candidates_lib.candidate_features(exp, targets)
  if featureless:
    log(f"[design] {len(featureless):,} candidates skipped: no features from {feats.sources}, "
        f"e.g. {', '.join(featureless[:5])}")
    skipped = set(featureless)
    targets = [t for t in targets if t not in skipped]
  if not targets:
    raise InputError("--candidates", "no candidate has perturbation features",
                     "give genes that the run's feature sources know")
  out = candidates_lib.score_targets(exp, params, targets=targets, feats=feats, controls=controls,
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
