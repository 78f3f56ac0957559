"""The compiled rounding equals the NumPy reference (`_perturbed_mean`, `_systematic_round`)."""

import numpy as np
import pytest

from vccjax.experiment import perturbed_counts, predicted_cells


def _case(n, g, seed):
  rng = np.random.default_rng(seed)
  counts = rng.poisson(rng.gamma(0.3, 3.0, g), (n, g)).astype(np.float64)
  totals = counts.sum(1) + 1.0
  log_fold = rng.normal(0, 0.7, (n, g)).astype(np.float32)
  control = rng.gamma(0.3, 3.0, g)
  return rng, counts, totals, log_fold, control


def _reference(counts, log_fold, totals, control, keys, start):
  target_sum = float(np.median(totals))
  mean = predicted_cells._perturbed_mean(counts, log_fold, totals=totals, target_sum=target_sum,
                                         control_counts=control)
  return predicted_cells._systematic_round(mean, keys, start), totals / target_sum


@pytest.mark.parametrize("n", [1, 5, 2048, 3000])
def test_round_genes_equals_the_numpy_reference(n):
  rng, counts, totals, log_fold, control = _case(n, 40, n)
  keys, start = rng.random((n, 40)), rng.random(40)
  if n > 2048:  # keys alike in all but their last bit: the cell's bits push that bit out
    keys[1::2] = keys[0:-1:2] + 2.0**-53
  expected, scale = _reference(counts, log_fold, totals, control, keys, start)
  fold = np.exp(np.clip(log_fold, -predicted_cells.MAX_LOG_FOLD, predicted_cells.MAX_LOG_FOLD))
  out = np.empty_like(counts)
  perturbed_counts.round_genes(counts, fold, scale, control, keys, start, out)
  np.testing.assert_array_equal(out, expected)
