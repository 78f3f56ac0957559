r"""Inverse-design recall: does `vccjax.design` find a held-out perturbation from its real effect?

  python benchmarks/design_recall.py        # Datlinger, Norman, synthetic: 2 folds each (~20 min)
  python benchmarks/design_recall.py --datasets=norman19_k562:2,synthetic:2 --steps=200
  python benchmarks/design_recall.py --datasets=norman19_k562_doubles:2  # Norman doubles, ~2 min

For each dataset, the single-gene targets are cut into K seeded folds. Per fold, the set
transformer (`configs/set_tx.py:bench`, `--steps` steps) is trained without the fold's targets;
then each held-out target's real effect (`PerturbDataset.target_lfc`: natural-log fold change of
its cells' mean normalised counts against context-matched controls, all genes of the file) is the
signature, and every gene that a feature source of the run knows (~19k on the real files: GO,
control PCA, Replogle, ESM2; the 1,000 genes of the synthetic screen: control PCA and its gene
embeddings) is a candidate. Reported: how often the true target ranks first / in the top 10, and
its median rank, for two signatures:

* full: every gene of the file.
* own_gene_removed: the target's own gene left out of the signature, and every candidate scored
  without the model's explicit change of its own gene (`own_genes=False`), so that only
  downstream effects can find it. (Leaving out one column but keeping the knockdown term would
  leak: the true target would be the one candidate without an unmatched knockdown entry.) Where
  the file does not measure the target, this is the full signature (same ranks).

Methods:
* model (specific, default): `vccjax.design.ranking.rank_candidates`, metric "specific".
* model (plain cosine): the same with `metric="cosine"` (the default before; cosine of the raw
  mean predicted log fold change and the signature).
* peer, what a user would do without a model (nearest neighbour among the training targets'
  effects): let R be the fold's training targets that are single genes (the targets whose
  effects the model was fitted to; validation targets are not used by either) and f(g) the
  run's feature vector of gene g (`Experiment.features_for`, the model's input). For a candidate
  c, nn(c) = argmax over r in R of cos(f(c), f(r)) (first by name on ties; a training target is
  its own neighbour). Candidates are ranked by cos(signature, real effect of nn(c)) on the
  signature's genes, then by cos(f(c), f(nn(c))) (the closer of the candidates sharing a
  neighbour first), then by name.
* chance: 1 / candidates (top-1) and 10 / candidates (top-10); median rank (candidates + 1) / 2.

A second table ranks only the screen's own single targets (train, validation and held-out; ~20),
the question "which of the genes I screened would do this?": recall@1/@3 and mean rank.

The synthetic screen (`vccjax.data.synthetic`, written once into the workdir: 12,000 cells, 1,000
genes, 40 CRISPRi targets, 2 batches, 8,000 UMI per cell) is a CRISPRi screen where every target
is measured, as in the VCC files; on the real files here few targets are measured (Datlinger 6
of 20, a CRISPR knockout that does not lower the transcript; Norman 1 of 18).

A held-out target without features cannot be a candidate and counts as a miss. Time per ranking
is the wall time of one `rank_candidates` call over all candidates by the default metric (the
reference predictions included; after the first, which also compiles), with the CPU time beside
it (the machine may be shared).

Measured (default command, 2 CPU cores shared with other jobs): recall@1 / @10 / median rank.

  data (targets, candidates)    signature  specific (default)   plain cosine      peer
  synthetic (40, 1,000)         full       0.975 / 0.975 / 1    0.925 / 1 / 1     0 / 0 / 430
  synthetic                     own gene   0 / 0 / 478          0 / 0.025 / 453   0 / 0 / 413
  Datlinger 2017 (20, 19,286)   both       0.05 / 0.05 / 4,722  0 / 0 / 8,682     0 / 0 / 12,035
  Norman 2019 (18, 18,804)      both       0 / 0 / 4,002        0 / 0 / 8,532     0 / 0 / 14,164

Chance: 0.001 / 0.01 / 500 (synthetic), ~0.0001 / 0.0005 / ~9.5k (real files). "own gene": the
own gene removed; "both": the same ranks (the real files measure few held-out targets).

Screen's own targets, recall@3 (specific / peer / chance): Datlinger 0.05 / 0.20 / 0.15, Norman
0.11 / 0.11 / 0.17, synthetic 0.975 / 0 / 0.075. Seconds per ranking (wall, median, load ~4):
Datlinger 8.6 (3.1 of it encoding), Norman 3.6, synthetic 0.6. The recall comes from the
target's own knockdown where it is measured (synthetic); downstream effects alone stay at chance
among 1,000 synthetic genes, and on the real files (targets mostly unmeasured) halve the median
rank without reaching the top 10 (one exception: RELA, first, Datlinger).

Held-out doubles (`NAME_doubles:K`, e.g. `--datasets=norman19_k562_doubles:2`): see
`design_recall_doubles.py`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import design_recall_doubles as doubles
from design_recall_common import MISS, SHARED_DATA, cosine_rows, recall, train_fold

# The synthetic screen (`vccjax.data.synthetic`, CRISPRi, every target measured; 12,000 cells).
SYNTHETIC = dict(n_genes=1000, n_targets=40, n_batches=2, median_umi=8000, seed=0)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--datasets", default="datlinger17_jurkat:2,norman19_k562:2,synthetic:2",
                 help="comma-separated NAME:FOLDS (files in ../shared/data, or 'synthetic'); "
                 "NAME_doubles:FOLDS holds out the file's seen doubles instead of its singles")
  p.add_argument("--folds", type=int, default=None, help="override the folds of every dataset")
  p.add_argument("--steps", type=int, default=300, help="training steps per fold")
  p.add_argument("--seed", type=int, default=0, help="seed of the folds")
  p.add_argument("--workdir", default=None, help="where runs go (default: a temporary dir)")
  return p.parse_args(argv)


def single_targets(path: str) -> list[str]:
  from vccjax.data import io as data_io
  adata = data_io.read_h5ad(path, backed=True)
  return [t for t in data_io.read_labels(adata, path=path).targets if "+" not in t]


class NearestNeighbourPeer:
  """The peer of the module docstring, prepared once per fold."""

  def __init__(self, exp, candidates: list[str]):
    ds = exp.dataset
    self.reference = [t for t in exp.split.train if "+" not in t]
    self.reference_lfc = ds.target_lfc[[ds.targets.index(t) for t in self.reference]]
    feats = exp.features_for(sorted(set(candidates) | set(self.reference)))
    row = {g: i for i, g in enumerate(feats.genes)}
    sim = cosine_rows(feats.matrix[[row[c] for c in candidates]],
                      feats.matrix[[row[r] for r in self.reference]])  # reference is sorted
    self.neighbour = sim.argmax(1)  # argmax takes the first (by name) of tied maxima
    self.neighbour_sim = sim[np.arange(len(candidates)), self.neighbour]
    self.candidates = np.array(candidates)

  def rank_of(self, signature_lfc: np.ndarray, target: str, columns=slice(None)) -> int:
    """Rank of `target` for the signature [G], compared on the genes `columns`."""
    effect_sim = cosine_rows(signature_lfc[None, columns], self.reference_lfc[:, columns])[0]
    score = effect_sim[self.neighbour]
    order = np.lexsort((self.candidates, -self.neighbour_sim, -score))
    hit = np.flatnonzero(self.candidates[order] == target)
    return int(hit[0]) + 1 if len(hit) else MISS


def run_fold(exp, params, test: list[str]) -> dict:
  """Ranks of each held-out target among all known genes (model by both metrics, peer; full
  signature and own gene removed) and among the screen's own single targets; ranking times."""
  from vccjax.design import candidates as candidates_lib
  from vccjax.design import ranking
  ds = exp.dataset
  pools = {"all": candidates_lib.known_genes(exp),
           "screen": sorted(t for t in ds.targets if "+" not in t)}
  peers = {name: NearestNeighbourPeer(exp, pool) for name, pool in pools.items()}
  genes = list(map(str, ds.gene_names))
  out = {f"{who}_{sig}": [] for who in ("specific", "cosine", "peer") for sig in SIGNATURES}
  out.update(screen_model=[], screen_peer=[], wall=[], cpu=[], measured=0,
             candidates=len(pools["all"]), screen=len(pools["screen"]),
             encode=encode_seconds(exp, pools["all"]))
  rank = lambda signature, candidates, metric, target, own_genes=True: next(
      (c.rank for c in ranking.rank_candidates(exp, params, signature=signature,
                                               candidates=candidates, metric=metric,
                                               own_genes=own_genes, log=None)
       if c.target == target), MISS)
  for target in test:
    lfc = ds.target_lfc[ds.targets.index(target)]
    keep = np.array([g != target for g in genes])
    out["measured"] += int(not keep.all())
    for sig in SIGNATURES:
      if sig == "own_gene_removed" and keep.all():  # the same signature: the same ranks
        for who in ("specific", "cosine", "peer"):
          out[f"{who}_{sig}"].append(out[f"{who}_full"][-1])
        continue
      # Downstream only: no candidate keeps the model's change of its own gene, else the one
      # whose gene left the signature would be the only one without an unmatched entry.
      own = sig == "full"
      cols = np.ones_like(keep) if own else keep
      signature = dict(zip(np.array(genes)[cols], lfc[cols].tolist()))
      wall, cpu = time.time(), time.process_time()
      out[f"specific_{sig}"].append(rank(signature, pools["all"], "specific", target, own))
      if sig == "full":
        out["wall"].append(time.time() - wall)
        out["cpu"].append(time.process_time() - cpu)
        out["screen_model"].append(rank(signature, pools["screen"], "specific", target))
        out["screen_peer"].append(peers["screen"].rank_of(lfc, target))
      out[f"cosine_{sig}"].append(rank(signature, pools["all"], "cosine", target, own))
      out[f"peer_{sig}"].append(peers["all"].rank_of(lfc, target, columns=cols))
  return out


def encode_seconds(exp, candidates: list[str]) -> float:
  """Wall time of encoding every candidate (`Experiment.encode`, chunk by chunk), alone."""
  from vccjax.design import candidates as candidates_lib
  feats, _ = candidates_lib.candidate_features(exp, candidates)
  expr = exp.dataset.hvg_log1p[candidates_lib.control_set(exp)][None]
  chunk = candidates_lib.chunk_size_for(exp, expr.shape[1])
  t0 = time.time()
  for start in range(0, len(candidates), chunk):
    candidates_lib.chunk_inputs(exp, feats=feats, targets=candidates[start:start + chunk],
                                control_expr=expr)
  return time.time() - t0


def table_rows(name: str, res: dict) -> list[str]:
  """Rows of the all-candidates table (one per signature and method) and of the screen table."""
  n, c, m = len(res["specific_full"]), res["candidates"], res["screen"]
  rows = []
  for sig in SIGNATURES:
    for who, label in METHODS:
      r = np.asarray(res[f"{who}_{sig}"])
      rows.append(f"{name:<20}{sig:<18}{label:<26}{n:>4}{recall(r, 1):>8.3f}"
                  f"{recall(r, 10):>8.3f}{np.median(r):>10,.0f}{c:>8,}")
    rows.append(f"{name:<20}{sig:<18}{'chance':<26}{n:>4}{1 / c:>8.4f}{10 / c:>8.4f}"
                f"{(c + 1) / 2:>10,.0f}{c:>8,}")
  screen = [f"{name:<20}{label:<26}{n:>4}{recall(res[key], 1):>8.3f}{recall(res[key], 3):>8.3f}"
            f"{np.mean(res[key]):>10.1f}{m:>8}" for key, label in
            (("screen_model", "model (specific)"), ("screen_peer", "peer (nearest neighbour)"))]
  screen.append(f"{name:<20}{'chance':<26}{n:>4}{1 / m:>8.3f}{3 / m:>8.3f}{(m + 1) / 2:>10.1f}"
                f"{m:>8}")
  return rows, screen


def timing_row(name: str, res: dict) -> str:
  # The first ranking of a run also compiles: time the others when there are any.
  wall = np.median(res["wall"][1:] or res["wall"])
  cpu = np.median(res["cpu"][1:] or res["cpu"])
  return (f"{name:<20}{res['candidates']:>8,}{wall:>8.2f}{cpu:>8.2f}"
          f"{np.mean(res['encode']):>8.2f}{res['measured']:>10}")


SIGNATURES = ("full", "own_gene_removed")
METHODS = (("specific", "model (specific, default)"), ("cosine", "model (plain cosine)"),
           ("peer", "peer (nearest neighbour)"))
ALL_HEADER = (f"{'dataset':<20}{'signature':<18}{'method':<26}{'n':>4}{'@1':>8}{'@10':>8}"
              f"{'med_rank':>10}{'cands':>8}")
SCREEN_HEADER = (f"{'dataset':<20}{'method':<26}{'n':>4}{'@1':>8}{'@3':>8}{'mean_rank':>10}"
                 f"{'cands':>8}")
TIMING_HEADER = f"{'dataset':<20}{'cands':>8}{'wall_s':>8}{'cpu_s':>8}{'enc_s':>8}{'measured':>10}"


def synthetic_screen(root: str) -> tuple[str, str]:
  """(screen .h5ad, gene embeddings .npz) of the synthetic CRISPRi screen, written once."""
  from vccjax.data import synthetic
  path, emb = os.path.join(root, "synthetic.h5ad"), os.path.join(root, "synthetic_emb.npz")
  if not os.path.exists(path):
    synthetic.write_synthetic(path, n_cells=12_000, workers=1, **SYNTHETIC)
    synthetic.write_embeddings(emb, **SYNTHETIC)
  return path, emb


def main(argv=None):
  args = parse_args(argv)
  from vccjax.data import splits
  root = args.workdir or tempfile.mkdtemp(prefix="design_recall_")
  os.makedirs(root, exist_ok=True)
  t_start, all_rows, screen_rows, timing_rows = time.time(), [], [], []
  doubles_out, doubles_timing = [], []
  for spec in args.datasets.split(","):
    name, _, folds = spec.partition(":")
    if name.endswith(doubles.DOUBLES):
      res = doubles.doubles_recall(name, folds=args.folds or int(folds or 2), steps=args.steps,
                                   seed=args.seed, root=root)
      doubles_out += doubles.doubles_rows(name, res)
      doubles_timing.append(doubles.doubles_timing_row(name, res))
      continue
    sources = None
    if name == "synthetic":
      path, emb = synthetic_screen(root)
      sources = f"control_pca,file:{emb}"
    else:
      path = os.path.abspath(os.path.join(SHARED_DATA, f"{name}.h5ad"))
    groups = splits.kfold_targets(single_targets(path), folds=args.folds or int(folds or 2),
                                  seed=args.seed)
    merged = {}
    for k, test in enumerate(groups):
      t0 = time.time()
      exp, params = train_fold(path, test, steps=args.steps, sources=sources,
                               workdir=os.path.join(root, f"{name}_fold{k}"))
      res = run_fold(exp, params, test)
      print(f"[design_recall] {name} fold {k} ({time.time() - t0:.0f}s): rank of each held-out "
            f"target among {res['candidates']:,}: model {dict(zip(test, res['specific_full']))}, "
            f"own gene removed {dict(zip(test, res['specific_own_gene_removed']))}, "
            f"peer {dict(zip(test, res['peer_full']))}", flush=True)
      for key, value in res.items():
        merged[key] = merged.get(key, []) + (value if isinstance(value, list) else [value])
    merged.update(candidates=merged["candidates"][0], screen=merged["screen"][0],
                  measured=sum(merged["measured"]))
    rows, screen = table_rows(name, merged)
    all_rows += rows
    screen_rows += screen
    timing_rows.append(timing_row(name, merged))
  if all_rows:
    print_singles_tables(args.steps, all_rows, screen_rows, timing_rows)
  if doubles_out:
    doubles.print_doubles_tables(args.steps, doubles_out, doubles_timing)
  print(f"[design_recall] total {time.time() - t_start:.0f}s; runs in {root}")


def print_singles_tables(steps: int, all_rows, screen_rows, timing_rows) -> None:
  print(f"\nHeld-out single targets found from their real effect (bench model, {steps} "
        "steps, all folds). Among every gene a feature source knows: recall@1/@10 and median "
        "rank of the true target; own_gene_removed: the target's own gene left out of the "
        "signature (where it is measured; else the same ranks)")
  print(ALL_HEADER + "\n" + "\n".join(all_rows))
  print("\nAmong the screen's own single targets (full signature): recall@1/@3 and mean rank")
  print(SCREEN_HEADER + "\n" + "\n".join(screen_rows))
  print("\nSeconds per ranking of every candidate by the default metric (median; wall, CPU, of "
        "it encoding); measured: held-out targets whose own gene the file measures")
  print(TIMING_HEADER + "\n" + "\n".join(timing_rows))


if __name__ == "__main__":
  main()
