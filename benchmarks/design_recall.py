r"""Inverse-design recall: does `vccjax.design` find a held-out perturbation from its real effect?

  python benchmarks/design_recall.py                      # Datlinger, Norman: 2 folds each
  python benchmarks/design_recall.py --datasets=norman19_k562 --folds=2 --steps=200

For each dataset, the single-gene targets are cut into K seeded folds. Per fold, the set
transformer (`configs/set_tx.py:bench`, `--steps` steps) is trained without the fold's targets;
then each held-out target's real effect (`PerturbDataset.target_lfc`: natural-log fold change of
its cells' mean normalised counts against context-matched controls, all genes of the file) is the
signature, and every gene that a feature source of the run knows (~19k: GO, control PCA,
Replogle, ESM2) is a candidate. Reported: how often the true target ranks first / in the top 10.

* model: `vccjax.design.rank_candidates` (cosine between the signature and the model's mean
  predicted log fold change from one seeded control set).
* peer, what a user would do without a model (nearest neighbour among the training targets'
  effects): let R be the fold's training targets that are single genes (the targets whose
  effects the model was fitted to; validation targets are not used by either) and f(g) the
  run's feature vector of gene g (`Experiment.features_for`, the model's input). For a candidate
  c, nn(c) = argmax over r in R of cos(f(c), f(r)) (first by name on ties; a training target is
  its own neighbour). Candidates are ranked by cos(signature, real effect of nn(c)), then by
  cos(f(c), f(nn(c))) (the closer of the candidates sharing a neighbour first), then by name.
* chance: 1 / candidates (top-1) and 10 / candidates (top-10); median rank candidates / 2.

A second table ranks only the screen's own single targets (train, validation and held-out; ~20),
the question "which of the genes I screened would do this?": recall@1/@3 and mean rank.

A held-out target without features cannot be a candidate and counts as a miss. Time per ranking
is the wall time of one `rank_candidates` call over all candidates (after the first, which
also compiles), with the CPU time beside it (the machine may be shared).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO, "..", "shared", "data")
MISS = np.iinfo(np.int32).max  # the rank of a target that is not among the candidates
sys.path.insert(0, os.path.join(REPO, "configs"))


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--datasets", default="datlinger17_jurkat:2,norman19_k562:2",
                 help="comma-separated NAME:FOLDS (files in ../shared/data)")
  p.add_argument("--folds", type=int, default=None, help="override the folds of every dataset")
  p.add_argument("--steps", type=int, default=300, help="training steps per fold")
  p.add_argument("--seed", type=int, default=0, help="seed of the folds")
  p.add_argument("--workdir", default=None, help="where runs go (default: a temporary dir)")
  return p.parse_args(argv)


def single_targets(path: str) -> list[str]:
  from vccjax.data import io as data_io
  adata = data_io.read_h5ad(path, backed=True)
  return [t for t in data_io.read_labels(adata, path=path).targets if "+" not in t]


def train_fold(path: str, test: list[str], *, steps: int, workdir: str):
  """Trains the bench model without `test`; returns (exp, params) of its best checkpoint."""
  import set_tx
  from vccjax import restore
  from vccjax import train
  config = set_tx.get_config("bench")
  config.data.path, config.data.test_targets = path, ",".join(test)
  config.train.steps = steps
  with contextlib.redirect_stdout(io.StringIO()):
    train.train_and_evaluate(config, workdir)
  exp, params, _ = restore.load_trained(workdir)
  return exp, params


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[len(a), len(b)] cosine similarity between the rows of a and b."""
  a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
  b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
  return a @ b.T


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

  def rank_of(self, signature_lfc: np.ndarray, target: str) -> int:
    effect_sim = cosine_rows(signature_lfc[None], self.reference_lfc)[0]
    score = effect_sim[self.neighbour]
    order = np.lexsort((self.candidates, -self.neighbour_sim, -score))
    hit = np.flatnonzero(self.candidates[order] == target)
    return int(hit[0]) + 1 if len(hit) else MISS


def run_fold(exp, params, test: list[str]) -> dict:
  """Ranks of each held-out target by the model and the peer among all known genes and among the
  screen's own single targets; ranking and encoding times."""
  from vccjax import design
  from vccjax import design_score
  ds = exp.dataset
  pools = {"all": design_score.known_genes(exp),
           "screen": sorted(t for t in ds.targets if "+" not in t)}
  peers = {name: NearestNeighbourPeer(exp, pool) for name, pool in pools.items()}
  genes = list(map(str, ds.gene_names))
  out = {f"{who}_{pool}": [] for who in ("model", "peer") for pool in pools}
  out.update(wall=[], cpu=[], candidates=len(pools["all"]), screen=len(pools["screen"]),
             encode=encode_seconds(exp, pools["all"]))
  for target in test:
    lfc = ds.target_lfc[ds.targets.index(target)]
    signature = dict(zip(genes, lfc.tolist()))
    for pool, candidates in pools.items():
      wall, cpu = time.time(), time.process_time()
      ranked = design.rank_candidates(exp, params, signature=signature, candidates=candidates,
                                      log=None)
      if pool == "all":
        out["wall"].append(time.time() - wall)
        out["cpu"].append(time.process_time() - cpu)
      hit = [c.rank for c in ranked if c.target == target]
      out[f"model_{pool}"].append(hit[0] if hit else MISS)
      out[f"peer_{pool}"].append(peers[pool].rank_of(lfc, target))
  return out



def encode_seconds(exp, candidates: list[str]) -> float:
  """Wall time of encoding every candidate (`Experiment.encode`, chunk by chunk), alone."""
  from vccjax import design_score
  feats, _ = design_score.candidate_features(exp, candidates)
  expr = exp.dataset.hvg_log1p[design_score.control_set(exp)][None]
  chunk = design_score.chunk_size_for(exp, expr.shape[1])
  t0 = time.time()
  for start in range(0, len(candidates), chunk):
    design_score.chunk_inputs(exp, feats=feats, targets=candidates[start:start + chunk],
                              control_expr=expr)
  return time.time() - t0


def recall(ranks, k: int) -> float:
  return float(np.mean(np.asarray(ranks) <= k))


def table_rows(name: str, fold, res: dict) -> tuple[str, str]:
  """(row of the all-candidates table, row of the screen table)."""
  n, c, m = len(res["model_all"]), res["candidates"], res["screen"]
  # The first ranking of a run also compiles: time the others when there are any.
  wall = np.median(res["wall"][1:] or res["wall"])
  cpu = np.median(res["cpu"][1:] or res["cpu"])
  ma, pa, ms, ps = (res[k] for k in ("model_all", "peer_all", "model_screen", "peer_screen"))
  all_row = _row(name, fold, n, [recall(ma, 1), recall(ma, 10)], [np.median(ma)],
                 [recall(pa, 1), recall(pa, 10)], [np.median(pa)], [1 / c, 10 / c], [c / 2],
                 [c], [wall, cpu, np.mean(res["encode"])])
  screen_row = _row(name, fold, n, [recall(ms, 1), recall(ms, 3)], [np.mean(ms)],
                    [recall(ps, 1), recall(ps, 3)], [np.mean(ps)], [1 / m, 3 / m],
                    [(m + 1) / 2], [m], [])
  return all_row, screen_row


def _row(name, fold, n, *groups) -> str:
  formats = ("{:>9.3f}", "{:>11,.1f}", "{:>9.3f}", "{:>11,.1f}", "{:>10.4f}", "{:>13,.1f}",
             "{:>7,}", "{:>7.1f}")
  cells = [fmt.format(v) for fmt, group in zip(formats, groups) for v in group]
  return f"{name:<20}{fold!s:>5}{n:>4}" + "".join(cells)


def _header(k: int, avg: str, extra: str = "") -> str:
  return (f"{'dataset':<20}{'fold':>5}{'n':>4}{'model@1':>9}{f'model@{k}':>9}"
          f"{'model_' + avg:>11}{'peer@1':>9}{f'peer@{k}':>9}{'peer_' + avg:>11}"
          f"{'chance@1':>10}{f'chance@{k}':>10}{'chance_' + avg:>13}{'cands':>7}" + extra)


ALL_HEADER = _header(10, "med", f"{'wall_s':>7}{'cpu_s':>7}{'enc_s':>7}")
SCREEN_HEADER = _header(3, "mean")


def main(argv=None):
  args = parse_args(argv)
  from vccjax.data import splits
  root = args.workdir or tempfile.mkdtemp(prefix="design_recall_")
  t_start, all_rows, screen_rows = time.time(), [], []
  for spec in args.datasets.split(","):
    name, _, folds = spec.partition(":")
    path = os.path.abspath(os.path.join(SHARED_DATA, f"{name}.h5ad"))
    groups = splits.kfold_targets(single_targets(path), folds=args.folds or int(folds or 2),
                                  seed=args.seed)
    merged = {}
    for k, test in enumerate(groups):
      t0 = time.time()
      exp, params = train_fold(path, test, steps=args.steps,
                               workdir=os.path.join(root, f"{name}_fold{k}"))
      res = run_fold(exp, params, test)
      print(f"[design_recall] {name} fold {k} ({time.time() - t0:.0f}s): rank of each held-out "
            f"target among {res['candidates']:,}: model {dict(zip(test, res['model_all']))}, "
            f"peer {dict(zip(test, res['peer_all']))}", flush=True)
      for row, rows in zip(table_rows(name, k, res), (all_rows, screen_rows)):
        rows.append(row)
      for key, value in res.items():
        merged[key] = merged.get(key, []) + (value if isinstance(value, list) else [value])
    merged.update(candidates=merged["candidates"][0], screen=merged["screen"][0])
    for row, rows in zip(table_rows(name, "all", merged), (all_rows, screen_rows)):
      rows.append(row)
  print(f"\nHeld-out single targets found from their real effect (bench model, {args.steps} "
        "steps). Among every gene a feature source knows: recall@1/@10 and median rank of the "
        "true target; wall/cpu: median s per ranking, enc: s of it spent encoding candidates")
  print(ALL_HEADER + "\n" + "\n".join(all_rows))
  print("\nAmong the screen's own single targets: recall@1/@3 and mean rank")
  print(SCREEN_HEADER + "\n" + "\n".join(screen_rows))
  print(f"[design_recall] total {time.time() - t_start:.0f}s; runs in {root}")


if __name__ == "__main__":
  main()
