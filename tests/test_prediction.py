"""Prediction post-processing: clipping at 0 keeps each gene's mean."""

import numpy as np

from vccjax import prediction


def test_floor_preserving_mean_keeps_means_and_bounds():
  rng = np.random.default_rng(0)
  zeros = rng.random((200, 30)) < 0.7
  x = np.where(zeros, 0.0, rng.gamma(2.0, 0.5, (200, 30))).astype(np.float32)
  shift = rng.normal(0, 0.3, 30).astype(np.float32)
  out = prediction.floor_preserving_mean(x + shift)
  assert out.min() >= 0 and out.max() < 15
  want = np.maximum((x + shift).mean(0), 0)
  np.testing.assert_allclose(out.mean(0), want, atol=1e-4)
  # Naive clipping would have raised the means of the down-shifted genes.
  down = shift < -0.1
  assert (np.clip(x + shift, 0, None).mean(0)[down] > want[down] + 1e-3).all()


def test_floor_preserving_mean_is_identity_without_negatives():
  x = np.abs(np.random.default_rng(1).normal(size=(50, 8))).astype(np.float32)
  np.testing.assert_array_equal(prediction.floor_preserving_mean(x), x)
