"""The nearest-effect peers on a hand-made memory: which entries they read, and the knockdown."""

import jax.numpy as jnp
import numpy as np

from vccjax import models
from vccjax.models import ModelInputs
from vccjax.models import baselines

G, M = 4, 3
MEMORY_LFC = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]],
                      np.float32)


def _inputs(sim, mask, target_out_pos=-1):
  b, k = sim.shape[:2]
  return ModelInputs(
      control_expr=jnp.zeros((b, 2, 3)), control_mask=jnp.ones((b, 2), bool),
      pert_genes=jnp.zeros((b, k, 5)), pert_gene_mask=jnp.asarray(np.arange(k) < 1)[None]
      .repeat(b, 0), target_out_pos=jnp.full((b, k), target_out_pos, jnp.int32),
      prior_lfc=jnp.zeros((b, G)), memory_lfc=jnp.asarray(np.broadcast_to(MEMORY_LFC, (b, M, G))),
      memory_keys=jnp.zeros((b, M, 5)), memory_sim=jnp.asarray(sim, jnp.float32),
      memory_mask=jnp.asarray(mask))


def _predict(name, x, knock=0.0):
  model = models.get_model(name, n_genes_out=G)
  params = {"params": {"knockdown_log_fold": jnp.asarray(knock)}}
  return np.asarray(model.apply(params, x))[:, 0]


def test_nearest_takes_the_most_similar_readable_entry():
  sim = np.array([[[0.2, 0.9, 0.5]], [[0.2, 0.9, 0.5]]])
  mask = np.array([[True, True, True], [True, False, True]])  # set 1 may not read entry 1
  out = _predict("nearest", _inputs(sim, mask))
  np.testing.assert_allclose(out[0], MEMORY_LFC[1])
  np.testing.assert_allclose(out[1], MEMORY_LFC[2])


def test_nearest_k_is_the_similarity_weighted_mean_of_the_k_best():
  sim = np.array([[[0.2, 0.9, 0.5]]])
  out = _predict("nearest_k", _inputs(sim, np.ones((1, M), bool)))
  k = models.NEAREST_K
  best = np.argsort(-sim[0, 0])[:k]
  w = sim[0, 0, best] / sim[0, 0, best].sum()
  np.testing.assert_allclose(out[0], w @ MEMORY_LFC[best], rtol=1e-6)


def test_similar_to_nothing_recalls_the_mean_and_knockdown_is_applied():
  sim = np.zeros((1, 1, M))
  out = _predict("nearest", _inputs(sim, np.array([[True, True, False]]), target_out_pos=3),
                 knock=-1.5)
  expected = MEMORY_LFC[:2].mean(0)
  expected[3] = -1.5
  np.testing.assert_allclose(out[0], expected, rtol=1e-6)


def test_fit_nearest_knockdown_is_the_median_kept_share():
  effects = np.log(np.array([[0.2, 1, 1], [1, 0.4, 1], [1, 1, 0.9], [0.5, 0.5, 0.5]]))
  params = baselines.fit_nearest_effect(effects=effects, target_columns=np.array([0, 1, 2, -1]))
  np.testing.assert_allclose(np.exp(float(params["params"]["knockdown_log_fold"])), 0.4,
                             rtol=1e-6)
