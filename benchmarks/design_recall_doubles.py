r"""Inverse-design recall on held-out double perturbations (`design_recall.py NAME_doubles:K`).

  python benchmarks/design_recall.py --datasets=norman19_k562_doubles:2

Held-out doubles (`NAME_doubles:K`): the seen doubles of NAME.h5ad (`A+B` whose singles A and B
the file holds too, `vccjax.data.splits.eligible_targets(..., "seen_doubles")`; Norman 2019 has 5)
are cut into K seeded folds. Per fold the bench model trains without the fold's doubles; its
validation targets are drawn like the config's (seeded, 20% of the targets) but never among a
held-out double's singles, which therefore train (the config's own draw would move MAP2K3 and
SLC38A2 to validation). Each held-out double's real effect (all genes of the file) is the
signature; the true pair is found among the ranked labels order-invariantly (`pair_rank`).

* model (specific), every known gene: `rank_candidates(max_genes=2, metric="specific")` over
  every gene a feature source knows: the singles, then all pairs of the 50 best singles
  (`pair_pool`). A true pair outside those pairs is a miss (column not_pool).
* model (specific), measured singles: the same with the fold's measured training singles (the
  targets without '+' in `exp.split.train`) as candidates and all their pairs (`pair_pool` = all).
* peer, what a user without a model would do (additive on measured effects, `additive_peer`):
  every measured training single s scored by cos(signature, lfc[s]), every pair (a, b) of them by
  cos(signature, lfc[a] + lfc[b]). This peer only knows the measured singles (15-16 here, 120-136
  candidates), while the model ranks every known gene: its chance is 1/120, not 1/20,029.
* diagnostic, not a method: the model's ranking of every known gene with the true pair added to
  the candidates (beside the pairs of the 50 best singles): how it would rank if the pool held it.
* chance: 1 / candidates and 10 / candidates; median rank (candidates + 1) / 2.

Measured (`python benchmarks/design_recall.py --datasets=norman19_k562_doubles:2`, 300 steps,
111 s in all on 2 shared CPU cores): 5 held-out doubles, recall@1 / @10 / median rank.

  method, candidates                                  @1 / @10 / median   chance
  model (specific), every known gene (20,029)         0 / 0 / miss        5e-05 / 5e-04 / 10,015
  diagnostic: model, true pair added (20,030)         0 / 0 / 1,107
  model (specific), measured singles + pairs (120)    0 / 1.0 / 7         0.008 / 0.083 / 60
  peer (additive), measured singles + pairs (120)     0.2 / 0.8 / 8       0.008 / 0.083 / 60

(120 or 136 measured candidates, by fold; the median is shown.)

Seconds per ranking with `max_genes=2` (18,804 singles and 1,225 pairs): 3.6 and 4.2 wall
(median; two runs of the same command, the machine shared).
Every true pair fell outside the model's pair pool (5 of 5): the better single of each double
ranks 5th, 24th, 81st, 404th and 4,423rd of the 18,804 singles, the other 2,463rd to 15,786th,
and pairs are formed from the best 50 only; added by hand, the true pair still ranks 55th to
1,251st, behind pairs of other strong singles. Among the measured singles, both methods mostly
put pairs that share the double's stronger gene first: the model ranks every true pair 6th-8th
of 120-136 (recall@10 1.0), the peer 1st-11th (0.8, and the only first place: MAP2K3+MAP2K6).
With 5 doubles neither clearly beats the other: the model does not beat the additive peer.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from design_recall_common import (MISS, SHARED_DATA, cosine_rows, recall,  # noqa: E402
                                  train_fold)

DOUBLES = "_doubles"  # NAME_doubles: hold out the seen doubles of NAME.h5ad, not its singles


def seen_double_folds(path: str, *, folds: int, seed: int) -> tuple[list[str], list[list[str]]]:
  """(every target of the file, K seeded folds of its seen doubles: the `A+B` targets whose
  singles A and B the file holds too)."""
  from vccjax.data import io as data_io
  from vccjax.data import splits
  targets = data_io.read_labels(data_io.read_h5ad(path, backed=True), path=path).targets
  return targets, splits.kfold_targets(splits.eligible_targets(targets, "seen_doubles"),
                                       folds=folds, seed=seed)


def val_keeping_singles(targets: list[str], test: list[str]) -> list[str]:
  """Validation targets drawn like the bench config's (seeded, round(val_fraction x targets)),
  but never a held-out double's single: both of its singles train, as "seen" promises."""
  import set_tx
  from vccjax.data import targets as targets_lib
  data = set_tx.get_config("bench").data
  kept = set(test) | {g for t in test for g in targets_lib.genes_of(t)}
  pool = np.random.default_rng(data.split_seed).permutation(
      sorted(t for t in targets if t not in kept))
  return sorted(pool[:max(1, round(data.val_fraction * len(targets)))].tolist())


def pair_rank(ranked: list[str], target: str) -> int:
  """1-based position of `target` in the labels `ranked`, genes compared as sets (`B+A` finds
  `A+B`; a single never matches a pair); MISS if absent."""
  from vccjax.data import targets as targets_lib
  key = frozenset(targets_lib.genes_of(target))
  return next((i + 1 for i, t in enumerate(ranked)
               if frozenset(targets_lib.genes_of(t)) == key), MISS)


def additive_peer(signature_lfc: np.ndarray, singles_lfc: np.ndarray,
                  singles: list[str]) -> list[str]:
  """The additive peer's ranking, best first (ties by name): every single s by
  cos(signature, lfc[s]), every pair (a, b) by cos(signature, lfc[a] + lfc[b]).

  Args:
    signature_lfc: [G] wanted log fold change.
    singles_lfc: [S, G] measured log fold changes of the singles `singles`.
    singles: their S labels.
  Returns:
    S + S(S-1)/2 labels, `A` or `A+B` (genes in name order).
  """
  i, j = np.triu_indices(len(singles), k=1)
  effects = np.concatenate([singles_lfc, singles_lfc[i] + singles_lfc[j]])
  names = np.array(list(singles) + ["+".join(sorted((singles[a], singles[b])))
                                    for a, b in zip(i, j)])
  score = cosine_rows(np.asarray(signature_lfc)[None], effects)[0]
  return names[np.lexsort((names, -score))].tolist()


def run_doubles_fold(exp, params, test: list[str]) -> dict:
  """Per held-out double: the rank of its pair (model among every known gene and the pairs of
  its best singles; model and additive peer among the measured training singles and all their
  pairs), its singles' ranks among the model's singles, candidate counts, ranking times."""
  from vccjax.design import candidates as candidates_lib
  from vccjax.design import ranking as ranking_lib
  from vccjax.data import targets as targets_lib
  ds = exp.dataset
  known = candidates_lib.known_genes(exp)
  singles = [t for t in exp.split.train if "+" not in t]
  singles_lfc = ds.target_lfc[[ds.targets.index(t) for t in singles]]
  out = {key: [] for key in ("model", "model_given_pair", "model_measured", "peer", "candidates",
                             "peer_candidates", "single_ranks", "wall", "cpu")}
  ranking = lambda signature, candidates, **kw: [c.target for c in ranking_lib.rank_candidates(
      exp, params, signature=signature, candidates=candidates, max_genes=2, metric="specific",
      log=None, **kw)]
  for target in test:
    lfc = ds.target_lfc[ds.targets.index(target)]
    signature = dict(zip(map(str, ds.gene_names), lfc.tolist()))
    wall, cpu = time.time(), time.process_time()
    ranked = ranking(signature, known)
    out["wall"].append(time.time() - wall)
    out["cpu"].append(time.process_time() - cpu)
    out["model"].append(pair_rank(ranked, target))
    out["candidates"].append(len(ranked))
    ranked_singles = [t for t in ranked if "+" not in t]
    out["single_ranks"].append([pair_rank(ranked_singles, g) for g in targets_lib.genes_of(target)])
    # Diagnostic, not a method: the true pair added to the candidates, as if the pool held it.
    out["model_given_pair"].append(pair_rank(ranking(signature, known + [target]), target))
    out["model_measured"].append(pair_rank(ranking(signature, singles, pair_pool=len(singles)),
                                           target))
    peer = additive_peer(lfc, singles_lfc, singles)
    out["peer"].append(pair_rank(peer, target))
    out["peer_candidates"].append(len(peer))
  return out


def doubles_recall(name: str, *, folds: int, steps: int, seed: int, root: str) -> dict:
  """Trains one bench model per fold of NAME's seen doubles; the merged `run_doubles_fold`."""
  path = os.path.abspath(os.path.join(SHARED_DATA, f"{name[:-len(DOUBLES)]}.h5ad"))
  targets, groups = seen_double_folds(path, folds=folds, seed=seed)
  merged = {}
  for k, test in enumerate(groups):
    t0 = time.time()
    exp, params = train_fold(path, test, steps=steps, val=val_keeping_singles(targets, test),
                             workdir=os.path.join(root, f"{name}_fold{k}"))
    res = run_doubles_fold(exp, params, test)
    print(f"[design_recall] {name} fold {k} ({time.time() - t0:.0f}s): rank of each held-out "
          f"pair among {res['candidates'][0]:,}: model {dict(zip(test, res['model']))} (its "
          f"singles among the singles: {dict(zip(test, res['single_ranks']))}; the pair added "
          f"to the candidates: {dict(zip(test, res['model_given_pair']))}); among the "
          f"{res['peer_candidates'][0]} measured: model {dict(zip(test, res['model_measured']))}"
          f", peer {dict(zip(test, res['peer']))}", flush=True)
    for key, value in res.items():
      merged[key] = merged.get(key, []) + value
  return merged


def doubles_rows(name: str, res: dict) -> list[str]:
  """Rows of the doubles table: model and additive peer, chance beside each candidate set."""
  n = len(res["model"])
  share = lambda x: f"{x:.3f}" if x == 0 or x >= 1e-3 else f"{x:.1e}"
  row = lambda label, at1, at10, median, cands, outside="": (
      f"{name:<24}{label:<44}{n:>4}{share(at1):>9}{share(at10):>9}{median:>10}{cands:>8,}"
      f"{outside:>9}")
  med = lambda r, cands: f"{np.median(r):,.0f}" if np.median(r) <= cands else "miss"
  rows = []
  for label, key, cands_key, outside in (
      ("model (specific), every known gene", "model", "candidates",
       str(int(np.sum(np.asarray(res["model"]) == MISS)))),
      ("diagnostic: model, true pair added", "model_given_pair", "candidates", ""),
      ("model (specific), measured singles", "model_measured", "peer_candidates", ""),
      ("peer (additive), measured singles", "peer", "peer_candidates", "")):
    c = int(np.median(res[cands_key]))
    rows.append(row(label, recall(res[key], 1), recall(res[key], 10), med(res[key], c), c,
                    outside))
    if key in ("model", "peer"):
      rows.append(row("chance" + label[label.index(","):], 1 / c, min(10 / c, 1.0),
                      f"{(c + 1) / 2:,.0f}", c))
  return rows


def doubles_timing_row(name: str, res: dict) -> str:
  wall, cpu = np.median(res["wall"][1:] or res["wall"]), np.median(res["cpu"][1:] or res["cpu"])
  return f"{name:<24}{int(np.median(res['candidates'])):>8,}{wall:>8.2f}{cpu:>8.2f}"


DOUBLES_HEADER = (f"{'dataset':<24}{'method, candidates':<44}{'n':>4}{'@1':>9}{'@10':>9}"
                  f"{'med_rank':>10}{'cands':>8}{'not_pool':>9}")
DOUBLES_TIMING_HEADER = f"{'dataset':<24}{'cands':>8}{'wall_s':>8}{'cpu_s':>8}"


def print_doubles_tables(steps: int, rows, timing_rows) -> None:
  print(f"\nHeld-out seen doubles found from their real effect (bench model, {steps} steps, "
        "all folds): recall@1/@10 and median rank of the true pair (order-invariant; 'miss' "
        "when over half are missing). Every known gene: all singles and the pairs of the 50 "
        "best (not_pool: true pairs not among them, a miss); true pair added: a diagnostic, "
        "the same with the true pair among the candidates (cands + 1); measured singles: the "
        "fold's measured training singles and all their pairs")
  print(DOUBLES_HEADER + "\n" + "\n".join(rows))
  print("\nSeconds per ranking of every known gene and the pairs of the best 50 (max_genes=2; "
        "median, wall and CPU)")
  print(DOUBLES_TIMING_HEADER + "\n" + "\n".join(timing_rows))
