"""Per-target scores over repeats of the folds, bootstrap intervals and paired model comparisons.

A target's overall score is 100 x the mean of its three scaled scores, each scaled against its
fold's cell-mean baseline as the fold's score is (DES, PDS: (x - base) / (1 - base); MAE:
1 - x / base), without the clip at 0 that the official fold score applies: so the mean over a
fold's targets is the fold's overall score whenever no scaled score of the fold is negative.
Intervals come from a percentile bootstrap over targets (each target's value averaged over the
repeats that held it out), so they say how much the figure depends on which targets a screen has.
"""

from __future__ import annotations

import numpy as np

N_BOOTSTRAP = 2000
TIE = 1e-9  # |difference| at or below this is a tie


def target_overall(row: dict, baseline: dict) -> float:
  """Overall score of one target: row {des, pds, mae}, baseline {des, pds, mae} of its fold."""
  x = np.array([row[k] for k in ("des", "pds", "mae")], np.float64)
  b = np.array([baseline[k] for k in ("des", "pds", "mae")], np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    scaled = np.concatenate([(x[:2] - b[:2]) / (1 - b[:2]), 1 - x[2:] / b[2:]])
  scaled[~np.isfinite(scaled)] = 0.0
  return 100.0 * float(scaled.mean())


def target_rows(per_fold: list[dict], models: list[str]) -> list[dict]:
  """One row per (repeat, fold, model, target) with its raw scores and overall score.

  per_fold: [{"repeat", "fold", "scores": {model: fold scores with "per_target"}}].
  """
  rows = []
  for entry in per_fold:
    for model in models:
      s = entry["scores"][model]
      base = {k: s[f"{k}_baseline"] for k in ("des", "pds", "mae")}
      for r in s["per_target"]:
        rows.append({"repeat": entry["repeat"], "fold": entry["fold"], "model": model,
                     "target": r["perturbation"], **{k: v for k, v in r.items()
                                                     if k != "perturbation"},
                     "overall": target_overall(r, base)})
  return rows


def per_target_means(rows: list[dict], model: str, key: str = "overall") -> dict[str, float]:
  """{target: mean of `key` over the repeats} of one model."""
  values: dict[str, list[float]] = {}
  for r in rows:
    if r["model"] == model:
      values.setdefault(r["target"], []).append(r[key])
  return {t: float(np.mean(v)) for t, v in sorted(values.items())}


def bootstrap_indices(n: int, *, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
  """[n_boot, n] indices drawn with replacement (seeded)."""
  return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def mean_interval(values, *, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> tuple[float, float,
                                                                                   float]:
  """(mean, 2.5th, 97.5th percentile of the bootstrap means) of values [n]."""
  values = np.asarray(values, np.float64)
  if len(values) == 0:
    return float("nan"), float("nan"), float("nan")
  means = values[bootstrap_indices(len(values), n_boot=n_boot, seed=seed)].mean(1)
  lo, hi = np.percentile(means, [2.5, 97.5])
  return float(values.mean()), float(lo), float(hi)


def paired(model: dict[str, float], peer: dict[str, float], *, n_boot: int = N_BOOTSTRAP,
           seed: int = 0) -> dict:
  """Per-target paired comparison of two {target: score} maps (targets both have).

  Returns {"wins", "ties", "losses", "mean_difference", "low", "high", "targets"}: the counts of
  targets where the model scores above / equal to / below the peer, and the mean of the
  differences (model - peer) with its 95% bootstrap interval over targets.
  """
  targets = sorted(set(model) & set(peer))
  d = np.array([model[t] - peer[t] for t in targets], np.float64)
  mean, lo, hi = mean_interval(d, n_boot=n_boot, seed=seed)
  return {"wins": int((d > TIE).sum()), "ties": int((np.abs(d) <= TIE).sum()),
          "losses": int((d < -TIE).sum()), "mean_difference": mean, "low": lo, "high": hi,
          "targets": len(targets)}
