"""Per-target scores over repeats of the folds, bootstrap intervals and paired model comparisons.

The figure of a model is the official one: the mean over (repeat, fold) pairs of the fold's
overall score. Its 95% interval is a percentile bootstrap over targets: each draw resamples the
held-out targets of every (repeat, fold) pair with replacement, recomputes each fold's overall
score from the drawn targets' DES, PDS and MAE (scaled against the fold's cell-mean baseline,
held fixed, and clipped at 0 as the official score is) and averages over the pairs. The clip
biases the draws upwards where a scaled score sits near 0 (noise can only add to it), so the
interval is the draws' 2.5th to 97.5th percentile shifted down by that bias (the mean of the
draws minus the figure): a bias-corrected percentile interval around the figure.

Paired comparisons are per target, where the statistic is linear and the bootstrap unbiased: a
target's overall score is the official rule applied to it alone (100 x the mean of its three
scaled scores, each against its fold's baseline and clipped at 0), averaged over the repeats
that held it out; the model wins, ties or loses a target by its difference to the peer's, and
the mean of the differences gets a percentile bootstrap interval over targets.
"""

from __future__ import annotations

import numpy as np

METRICS = ("des", "pds", "mae")
N_BOOTSTRAP = 2000
TIE = 1e-9  # |difference| at or below this is a tie


def overall(x: np.ndarray, baseline: np.ndarray) -> np.ndarray:
  """Official overall score(s): x [..., 3] mean DES, PDS, MAE; baseline [3] -> [...]."""
  with np.errstate(divide="ignore", invalid="ignore"):
    scaled = np.concatenate([(x[..., :2] - baseline[:2]) / (1 - baseline[:2]),
                             1 - x[..., 2:] / baseline[2:]], axis=-1)
  scaled[~np.isfinite(scaled)] = 0.0
  return 100.0 * np.clip(scaled, 0.0, None).mean(-1)


def target_overall(row: dict, baseline: dict) -> float:
  """Overall score of one target: row {des, pds, mae}, baseline {des, pds, mae} of its fold."""
  x = np.array([row[k] for k in METRICS], np.float64)
  return float(overall(x, np.array([baseline[k] for k in METRICS], np.float64)))


def _fold_arrays(per_fold: list[dict], model: str) -> list[tuple[np.ndarray, np.ndarray]]:
  """Per (repeat, fold) pair: ([targets, 3] DES, PDS, MAE of each target, [3] baseline)."""
  out = []
  for entry in per_fold:
    s = entry["scores"][model]
    out.append((np.array([[r[k] for k in METRICS] for r in s["per_target"]], np.float64),
                np.array([s[f"{k}_baseline"] for k in METRICS], np.float64)))
  return out


def bootstrap_overall(per_fold: list[dict], model: str, *, n_boot: int = N_BOOTSTRAP,
                      seed: int = 0) -> np.ndarray:
  """[n_boot] mean over (repeat, fold) pairs of the overall score on resampled targets.

  Pair p's draws come from `default_rng([seed, p])`, so two models drawn with the same seed see
  the same targets (a paired bootstrap).
  """
  total = np.zeros(n_boot)
  for p, (x, base) in enumerate(_fold_arrays(per_fold, model)):
    idx = np.random.default_rng([seed, p]).integers(0, len(x), size=(n_boot, len(x)))
    total += overall(x[idx].mean(1), base)
  return total / len(per_fold)


def official_mean(per_fold: list[dict], model: str) -> float:
  """Mean over (repeat, fold) pairs of the overall score from the per-target scores."""
  return float(np.mean([overall(x.mean(0), base) for x, base in _fold_arrays(per_fold, model)]))


def overall_interval(per_fold: list[dict], model: str, *, n_boot: int = N_BOOTSTRAP,
                     seed: int = 0) -> tuple[float, float, float]:
  """(mean overall over pairs, 2.5th and 97.5th percentile of `bootstrap_overall` minus its
  bias, the mean of the draws minus the figure)."""
  estimate = official_mean(per_fold, model)
  draws = bootstrap_overall(per_fold, model, n_boot=n_boot, seed=seed)
  lo, hi = np.percentile(draws, [2.5, 97.5]) - (draws.mean() - estimate)
  return estimate, float(lo), float(hi)


def mean_interval(values, *, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> tuple[float, float,
                                                                                   float]:
  """(mean, 2.5th, 97.5th percentile of the bootstrap means) of values [n]."""
  values = np.asarray(values, np.float64)
  draws = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
  lo, hi = np.percentile(values[draws].mean(1), [2.5, 97.5])
  return float(values.mean()), float(lo), float(hi)


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


def paired(per_fold: list[dict], rows: list[dict], model: str, peer: str, *,
           n_boot: int = N_BOOTSTRAP, seed: int = 0) -> dict:
  """`model` against `peer` per target (the targets both were scored on).

  Returns {"wins", "ties", "losses", "targets"}: targets where the model's per-target overall
  score (mean over repeats) is above / equal to / below the peer's; {"mean_difference", "low",
  "high"}: the mean over targets of the differences (model - peer) with its 95% percentile
  bootstrap interval over targets; "official_difference": the difference of the two official
  figures (means over (repeat, fold) pairs).
  """
  ours, theirs = per_target_means(rows, model), per_target_means(rows, peer)
  targets = sorted(set(ours) & set(theirs))
  d = np.array([ours[t] - theirs[t] for t in targets], np.float64)
  mean, lo, hi = mean_interval(d, n_boot=n_boot, seed=seed)
  return {"wins": int((d > TIE).sum()), "ties": int((np.abs(d) <= TIE).sum()),
          "losses": int((d < -TIE).sum()), "targets": len(targets),
          "mean_difference": mean, "low": lo, "high": hi,
          "official_difference": official_mean(per_fold, model) - official_mean(per_fold, peer)}
