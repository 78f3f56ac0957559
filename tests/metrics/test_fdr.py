"""Benjamini-Hochberg against scipy.stats.false_discovery_control(method="bh")."""

import numpy as np
import scipy.stats

from vccjax import metrics


def _p_values(seed):
  rng = np.random.default_rng(seed)
  p = rng.random((6, 50)) ** 3
  p[0, :10] = 1.0
  p[1, 5:15] = p[1, 5]  # ties
  p[2, 0] = 0.0
  return p


def test_global_family_matches_scipy():
  p = _p_values(0)
  ours = metrics.benjamini_hochberg(p)
  ref = scipy.stats.false_discovery_control(p.ravel(), method="bh").reshape(p.shape)
  np.testing.assert_allclose(ours, ref, rtol=1e-15, atol=0)


def test_per_perturbation_families_match_scipy():
  p = _p_values(1)
  ours = metrics.benjamini_hochberg(p, per_row=True)
  ref = np.stack([scipy.stats.false_discovery_control(row, method="bh") for row in p])
  np.testing.assert_allclose(ours, ref, rtol=1e-15, atol=0)


def test_a_summary_adjusts_its_p_values_once_per_mode():
  p = _p_values(2)
  summary = metrics.FileSummary([f"P{i}" for i in range(6)], np.zeros((7, 50)), p)
  for mode, per_row in (("global", False), ("per_perturbation", True)):
    first = summary.adjusted_p(mode)
    np.testing.assert_array_equal(first, metrics.benjamini_hochberg(p, per_row=per_row))
    assert summary.adjusted_p(mode) is first  # the real file's serve model and baseline
