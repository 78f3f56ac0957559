"""Benchmark statistics against direct NumPy computations."""

import numpy as np

from vccjax.benchmark import folds
from vccjax.benchmark import statistics


def _direct_overall(des, pds, mae, base):
  """The official rule written out: scale, NaN -> 0, clip at 0, x 100 mean."""
  scaled = []
  for x, b, kind in ((des, base[0], "up"), (pds, base[1], "up"), (mae, base[2], "down")):
    with np.errstate(divide="ignore", invalid="ignore"):
      v = (x - b) / (1 - b) if kind == "up" else 1 - x / b
    scaled.append(0.0 if not np.isfinite(v) else max(v, 0.0))
  return 100 * np.mean(scaled)


def test_target_overall_is_the_official_rule_on_one_target():
  row, base = {"des": 0.5, "pds": 0.8, "mae": 0.02}, {"des": 0.1, "pds": 0.6, "mae": 0.01}
  np.testing.assert_allclose(statistics.target_overall(row, base),
                             100 * np.mean([0.4 / 0.9, 0.2 / 0.4, 0.0]))  # MAE clipped at 0
  one = statistics.target_overall({"des": 0.0, "pds": 1.0, "mae": 0.01},
                                  {"des": 0.0, "pds": 1.0, "mae": 0.01})
  assert one == 0.0  # PDS baseline 1 (one held-out target): 0/0 -> 0


def _fold(repeat, fold, model_rows, base=(0.05, 0.6, 0.01)):
  scores = {}
  for model, rows in model_rows.items():
    x = np.array([r[1:] for r in rows])
    scores[model] = {
        "des_baseline": base[0], "pds_baseline": base[1], "mae_baseline": base[2],
        "overall": float(statistics.overall(x.mean(0), np.array(base))),
        **{k: 0.0 for k in ("des", "pds", "mae", "des_scaled", "pds_scaled", "mae_scaled",
                            "pds_centroid", "pearson_centred", "pds_centroid_baseline",
                            "pearson_centred_baseline")},
        "per_target": [{"perturbation": t, "des": d, "pds": p, "mae": m} for t, d, p, m in rows]}
  return {"repeat": repeat, "fold": fold, "scores": scores}


def _screen(seed=0):
  rng = np.random.default_rng(seed)
  per_fold = []
  for repeat in range(2):
    names = rng.permutation([f"T{i}" for i in range(9)])
    for fold, group in enumerate((names[:5], names[5:])):
      rows = {m: [(t, rng.uniform(0, 0.6), rng.uniform(0.4, 1.0), rng.uniform(0.005, 0.015))
                  for t in group] for m in ("m", "p")}
      per_fold.append(_fold(repeat, fold, rows))
  return per_fold


def test_bootstrap_interval_matches_a_direct_loop():
  per_fold = _screen()
  n_boot = 200
  got = statistics.bootstrap_overall(per_fold, "m", n_boot=n_boot, seed=3)
  direct = np.zeros(n_boot)
  for p, entry in enumerate(per_fold):
    s = entry["scores"]["m"]
    x = np.array([[r["des"], r["pds"], r["mae"]] for r in s["per_target"]])
    base = (s["des_baseline"], s["pds_baseline"], s["mae_baseline"])
    idx = np.random.default_rng([3, p]).integers(0, len(x), size=(n_boot, len(x)))
    for b in range(n_boot):
      direct[b] += _direct_overall(*x[idx[b]].mean(0), base) / len(per_fold)
  np.testing.assert_allclose(got, direct, rtol=1e-10)
  mean, lo, hi = statistics.overall_interval(per_fold, "m", n_boot=n_boot, seed=3)
  np.testing.assert_allclose(mean, np.mean([e["scores"]["m"]["overall"] for e in per_fold]))
  bias = direct.mean() - mean
  np.testing.assert_allclose([lo, hi], np.percentile(direct, [2.5, 97.5]) - bias)


def test_paired_counts_difference_and_interval():
  per_fold = _screen(1)
  rows = statistics.target_rows(per_fold, ["m", "p"])
  result = statistics.paired(per_fold, rows, "m", "p", n_boot=300, seed=5)
  # wins/ties/losses: per-target official rule, averaged over the two repeats
  diffs = []
  for t in sorted({r["target"] for r in rows}):
    per_model = {}
    for m in ("m", "p"):
      vals = []
      for e in per_fold:
        s = e["scores"][m]
        base = (s["des_baseline"], s["pds_baseline"], s["mae_baseline"])
        vals += [_direct_overall(r["des"], r["pds"], r["mae"], base)
                 for r in s["per_target"] if r["perturbation"] == t]
      per_model[m] = np.mean(vals)
    diffs.append(per_model["m"] - per_model["p"])
  diffs = np.array(diffs)
  assert (result["wins"], result["losses"], result["targets"]) == (
      (diffs > 0).sum(), (diffs < 0).sum(), 9)
  np.testing.assert_allclose(result["mean_difference"], diffs.mean())
  draws = np.random.default_rng(5).integers(0, 9, size=(300, 9))
  np.testing.assert_allclose([result["low"], result["high"]],
                             np.percentile([diffs[d].mean() for d in draws], [2.5, 97.5]))
  official = {m: np.mean([e["scores"][m]["overall"] for e in per_fold]) for m in ("m", "p")}
  np.testing.assert_allclose(result["official_difference"], official["m"] - official["p"])


def test_tables_run_on_repeats():
  per_fold = _screen(2)
  table, summary = folds.summary_table(per_fold, ["m", "p"])
  assert "ci_low" in summary["m"]["overall"] and "m" in table
  text, result = folds.paired_table(per_fold, "m", ["p"])
  assert set(result) == {"p"} and "p" in text
