"""The VCC overall score: each metric scaled against the cell-mean baseline's, as cell-eval scores.

cell-eval's `score_agg_metrics`: DES and PDS (best value 1) become (x - base) / (1 - base), MAE
(best value 0) becomes 1 - x / base; a NaN becomes 0, a negative value 0 (no upper clip); the
overall score is their mean, reported on the leaderboard x 100.
"""

from __future__ import annotations

import numpy as np

METRICS = ("des", "pds", "mae")


def scaled_scores(*, raw: dict, baseline: dict) -> dict:
  """Raw, baseline and baseline-scaled DES, PDS, MAE and the overall score.

  Args:
    raw: {"des", "pds", "mae"} means over perturbations of the model (extra keys ignored).
    baseline: the same for the cell-mean baseline.

  Returns:
    {"des", "pds", "mae", "des_baseline", ..., "des_scaled", "pds_scaled", "mae_scaled",
    "overall"}: overall = 100 x the mean of the three scaled scores.
  """
  user = np.array([raw[m] for m in METRICS], dtype=np.float64)
  base = np.array([baseline[m] for m in METRICS], dtype=np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    scaled = np.concatenate([(user[:2] - base[:2]) / (1 - base[:2]), 1.0 - user[2:] / base[2:]])
  scaled[np.isnan(scaled)] = 0.0
  scaled = np.clip(scaled, 0, None)
  out = {m: float(raw[m]) for m in METRICS}
  out.update({f"{m}_baseline": float(baseline[m]) for m in METRICS})
  out.update({f"{m}_scaled": float(v) for m, v in zip(METRICS, scaled)})
  out["overall"] = 100.0 * float(scaled.mean())
  return out
