"""Benchmark statistics against direct NumPy computations."""

import numpy as np

from vccjax.benchmark import folds
from vccjax.benchmark import statistics


def test_target_overall_scales_each_metric_against_the_fold_baseline():
  row, base = {"des": 0.5, "pds": 0.8, "mae": 0.02}, {"des": 0.1, "pds": 0.6, "mae": 0.01}
  expected = 100 * np.mean([(0.5 - 0.1) / 0.9, (0.8 - 0.6) / 0.4, 1 - 2.0])  # MAE: unclipped
  np.testing.assert_allclose(statistics.target_overall(row, base), expected)
  # PDS baseline 1 (one held-out target): 0/0 -> 0, as the official score does.
  one = statistics.target_overall({"des": 0.0, "pds": 1.0, "mae": 0.01},
                                  {"des": 0.0, "pds": 1.0, "mae": 0.01})
  assert one == 0.0


def test_mean_interval_is_the_percentile_bootstrap():
  values = np.random.default_rng(1).normal(3.0, 2.0, size=17)
  mean, lo, hi = statistics.mean_interval(values, n_boot=500, seed=4)
  draws = np.random.default_rng(4).integers(0, 17, size=(500, 17))
  boot = np.array([values[d].mean() for d in draws])
  np.testing.assert_allclose(mean, values.mean())
  np.testing.assert_allclose([lo, hi], np.percentile(boot, [2.5, 97.5]))
  assert lo < mean < hi


def test_paired_counts_and_interval():
  model = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 5.0, "only_model": 9.0}
  peer = {"a": 1.0, "b": 1.0, "c": 4.0, "d": 2.0, "only_peer": 0.0}
  p = statistics.paired(model, peer, n_boot=300, seed=2)
  d = np.array([2.0, 0.0, -2.0, 3.0])  # a, b, c, d (sorted targets both have)
  assert (p["wins"], p["ties"], p["losses"], p["targets"]) == (2, 1, 1, 4)
  np.testing.assert_allclose(p["mean_difference"], d.mean())
  draws = np.random.default_rng(2).integers(0, 4, size=(300, 4))
  np.testing.assert_allclose([p["low"], p["high"]],
                             np.percentile(d[draws].mean(1), [2.5, 97.5]))


def _fold(repeat, fold, model_rows):
  scores = {}
  for model, rows in model_rows.items():
    scores[model] = {"des": 0.0, "pds": 0.0, "mae": 0.0, "des_scaled": 0.0, "pds_scaled": 0.0,
                     "mae_scaled": 0.0, "overall": float(np.mean([r[1] for r in rows])),
                     "des_baseline": 0.0, "pds_baseline": 0.5, "mae_baseline": 1.0,
                     "pds_centroid": 0.5, "pearson_centred": 0.0,
                     "pds_centroid_baseline": 0.5, "pearson_centred_baseline": 0.0,
                     "per_target": [{"perturbation": t, "des": d, "pds": 0.5, "mae": 1.0}
                                    for t, d in rows]}
  return {"repeat": repeat, "fold": fold, "scores": scores}


def test_rows_average_over_repeats_and_paired_table():
  per_fold = [_fold(0, 0, {"m": [("A", 0.3), ("B", 0.0)], "p": [("A", 0.0), ("B", 0.3)]}),
              _fold(1, 0, {"m": [("A", 0.6)], "p": [("A", 0.0)]}),
              _fold(1, 1, {"m": [("B", 0.0)], "p": [("B", 0.0)]})]
  rows = statistics.target_rows(per_fold, ["m", "p"])
  assert len(rows) == 8
  # overall of a row = 100 * mean(des, 0, 0) with these baselines
  means = statistics.per_target_means(rows, "m")
  np.testing.assert_allclose([means["A"], means["B"]], [100 * 0.45 / 3, 0.0])
  _, result = folds.paired_table(rows, "m", ["p"])
  assert (result["p"]["wins"], result["p"]["losses"]) == (1, 1)
  np.testing.assert_allclose(result["p"]["mean_difference"],
                             np.mean([100 * 0.45 / 3, -100 * 0.15 / 3]))
  table, summary = folds.summary_table(per_fold, ["m", "p"])
  assert "per_target_overall" in summary["m"] and "m" in table
