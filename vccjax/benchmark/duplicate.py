"""The technical-duplicate bound of a fold: half of each held-out target's real cells predict the
other half.

A model's prediction can be no closer to the real cells than a second measurement of the same
perturbation is, up to the noise of that measurement. So each fold's real cells are split at
random, per held-out target, into halves A and B (the controls go to both); half A, as a
prediction file, is scored against half B, and so is every model's prediction, with the same
cell-mean baseline and rules. A model's overall score divided by the duplicate's is its share of
the bound (the baseline scores 0): near 1 means the task has nothing left to learn, a duplicate
near 0 that the held-out targets' effects cannot be told from noise at these cell numbers. The
duplicate measures each target with half its cells, so a noise-free prediction could score
above it: it is a reference, not a ceiling in the strict sense (the "positive baseline" of
Mejia et al. 2025; the best achievable performance of a task, estimated from its own data).
"""

from __future__ import annotations

import os

import numpy as np

from vccjax import atomic
from vccjax.data import io
from vccjax.score import file_scores

DUPLICATE = "technical_duplicate"
SCORE_KEYS = ("des", "pds", "mae", "des_scaled", "pds_scaled", "mae_scaled", "overall")


def split_halves(targets: np.ndarray, *, control_label: str,
                 seed: int) -> tuple[np.ndarray, np.ndarray] | None:
  """Row indices of halves A and B: every control in both, each target's cells split at random
  (A gets the smaller half). None when a held-out target has fewer than 2 cells."""
  rng = np.random.default_rng(seed)
  controls = np.flatnonzero(targets == control_label)
  a, b = [controls], [controls]
  for target in sorted(set(targets.tolist()) - {control_label}):
    rows = rng.permutation(np.flatnonzero(targets == target))
    if len(rows) < 2:
      return None
    a.append(np.sort(rows[:len(rows) // 2]))
    b.append(np.sort(rows[len(rows) // 2:]))
  return np.concatenate(a), np.concatenate(b)


def score_fold(fold_dir: str, models: list[str], *, control_label: str, fdr: str,
               seed: int) -> dict | None:
  """{DUPLICATE or model: scores against half B} for a benchmark fold directory (`real.h5ad`,
  `baseline.h5ad`, `<model>.h5ad`); the halves are written to `fold_dir/technical_duplicate/`.
  None (nothing written) when a held-out target has fewer than 2 cells."""
  real = io.read_h5ad(os.path.join(fold_dir, "real.h5ad"))
  targets = real.obs["target_gene"].astype(str).to_numpy()
  halves = split_halves(targets, control_label=control_label, seed=seed)
  if halves is None:
    return None
  paths = []
  for name, rows in zip(("half_a", "half_b"), halves):
    path = os.path.join(fold_dir, DUPLICATE, f"{name}.h5ad")
    with atomic.writing(path) as partial:
      real[rows].write_h5ad(partial)
    paths.append(path)
  del real
  half_a, half_b = paths
  preds = {DUPLICATE: half_a, **{m: os.path.join(fold_dir, f"{m}.h5ad") for m in models}}
  scores = file_scores.score_predictions(
      list(preds.values()), real_path=half_b,
      baseline_path=os.path.join(fold_dir, "baseline.h5ad"), fdr=fdr, control_label=control_label)
  return {name: {k: float(s["scaled"][k]) for k in SCORE_KEYS}
          for name, s in zip(preds, scores)}


def summary_table(per_fold: list[dict], models: list[str]) -> tuple[str, dict]:
  """Mean (sd) over the (repeat, fold) pairs scored against half B, and each model's share of
  the duplicate's mean overall score. ("", {}) when no fold has a duplicate."""
  folds = [f["duplicate"] for f in per_fold if f.get("duplicate")]
  if not folds:
    return "", {}
  bound = float(np.mean([f[DUPLICATE]["overall"] for f in folds]))
  lines = [f"{'model':<20}{'des':>9}{'pds':>9}{'mae':>9}{'overall':>15}{'share of bound':>16}"]
  summary = {}
  for name in [DUPLICATE] + models:
    values = {k: [f[name][k] for f in folds] for k in SCORE_KEYS}
    overall = float(np.mean(values["overall"]))
    share = overall / bound if bound > 0 else float("nan")
    summary[name] = {"overall": overall, "sd": float(np.std(values["overall"])), "share": share,
                     **{k: float(np.mean(values[k])) for k in ("des", "pds", "mae")}}
    lines.append(f"{name:<20}" + "".join(f"{np.mean(values[k]):9.3f}" for k in
                                        ("des", "pds", "mae"))
                 + f"{overall:8.2f}({np.std(values['overall']):5.2f})" + f"{share:16.2f}")
  return "\n".join(lines), summary
