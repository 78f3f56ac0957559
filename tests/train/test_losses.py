"""Losses against NumPy references; masks; finite gradients for coincident cells."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from vccjax.train import losses


def _energy_ref(x, y):
  return 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()


def _mmd_ref(x, y, bandwidths):
  scale = (cdist(y, y, "sqeuclidean")).mean()
  k = lambda a, b: sum(np.exp(-cdist(a, b, "sqeuclidean") / (2 * bw * scale)) for bw in bandwidths)
  return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


@pytest.fixture
def sets():
  rng = np.random.default_rng(0)
  return (rng.normal(size=(12, 7)).astype(np.float32),
          rng.normal(0.5, 1.2, size=(9, 7)).astype(np.float32))


def test_energy_matches_numpy(sets):
  x, y = sets
  got = losses.energy_distance(jnp.asarray(x), jnp.asarray(y), jnp.ones(12, bool), jnp.ones(9, bool))
  np.testing.assert_allclose(got, _energy_ref(x, y), rtol=1e-4)


def test_mmd_matches_numpy(sets):
  x, y = sets
  bw = (0.5, 1.0, 2.0)
  got = losses.mmd_rbf(jnp.asarray(x), jnp.asarray(y), jnp.ones(12, bool), jnp.ones(9, bool), bw)
  np.testing.assert_allclose(got, _mmd_ref(x, y, bw), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["energy", "mmd"])
def test_masked_rows_are_ignored(sets, name):
  x, y = sets
  fn = losses.DISTRIBUTION_LOSSES[name]
  y_padded = np.concatenate([y, 100 + np.ones((3, 7))])
  mask = np.arange(12) < 9
  full = fn(jnp.asarray(x), jnp.asarray(y), jnp.ones(12, bool), jnp.ones(9, bool))
  padded = fn(jnp.asarray(x), jnp.asarray(y_padded), jnp.ones(12, bool), jnp.asarray(mask))
  np.testing.assert_allclose(padded, full, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["energy", "mmd"])
def test_gradients_finite_when_cells_coincide(name):
  x = jnp.ones((5, 4))  # all cells identical, and identical to y
  y = jnp.ones((5, 4))
  fn = losses.DISTRIBUTION_LOSSES[name]
  grad = jax.grad(lambda a: fn(a, y, jnp.ones(5, bool), jnp.ones(5, bool)))(x)
  assert np.isfinite(np.asarray(grad)).all()


def test_energy_is_zero_for_identical_sets_and_positive_otherwise(sets):
  x, y = sets
  m = jnp.ones(12, bool)
  assert abs(float(losses.energy_distance(x, x, m, m))) < 1e-5
  assert float(losses.energy_distance(x, x + 1.0, m, m)) > 0.1


def test_batched_averages_over_sets(sets):
  x, y = sets
  xb, yb = np.stack([x, x + 1]), np.stack([y[:9], y[:9] * 2])
  mx, my = np.ones((2, 12), bool), np.ones((2, 9), bool)
  got = losses.batched(losses.energy_distance)(xb, yb, mx, my)
  np.testing.assert_allclose(got, (_energy_ref(xb[0], yb[0]) + _energy_ref(xb[1], yb[1])) / 2,
                             rtol=1e-4)
