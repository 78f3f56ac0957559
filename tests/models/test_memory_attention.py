"""Attention over measured effects: what it may read, and that the set transformer uses it."""

import jax
import jax.numpy as jnp
import numpy as np

from vccjax import models
from vccjax.experiment import training_data
from vccjax.models import ModelInputs
from vccjax.models import baselines
from vccjax.models import memory_attention

B, S, N_IN, K, F, G, M = 2, 4, 5, 2, 6, 7, 3


def _inputs(seed=0, sim=None, mask=None):
  rng = np.random.default_rng(seed)
  return ModelInputs(
      control_expr=jnp.asarray(rng.uniform(0, 2, (B, S, N_IN)), jnp.float32),
      control_mask=jnp.ones((B, S), bool),
      pert_genes=jnp.asarray(rng.normal(size=(B, K, F)), jnp.float32),
      pert_gene_mask=jnp.array([[True, False], [True, True]]),
      target_out_pos=jnp.full((B, K), -1, jnp.int32),
      prior_lfc=jnp.zeros((B, G)),
      memory_lfc=jnp.asarray(rng.normal(size=(B, M, G)), jnp.float32),
      memory_keys=jnp.asarray(rng.normal(size=(B, M, F)), jnp.float32),
      memory_sim=jnp.zeros((B, K, M)) if sim is None else jnp.asarray(sim, jnp.float32),
      memory_mask=jnp.ones((B, M), bool) if mask is None else jnp.asarray(mask))


def test_go_similarity_steers_the_untrained_attention_and_masks_hold():
  sim = np.zeros((B, K, M))
  sim[:, :, 1] = 5.0  # entry 1 is far the most similar: scale 10 x 5 dominates
  mask = np.array([[True, True, True], [True, False, True]])  # set 1 may not read entry 1
  x = _inputs(sim=sim, mask=mask)
  module = memory_attention.MemoryAttention(hidden=8, key_dim=4)
  params = module.init(jax.random.key(0), x)
  recalled, weights = module.apply(params, x)
  weights = np.asarray(weights)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  assert weights[0, 0, 1] > 0.99
  assert weights[1, :, 1].max() < 1e-6  # unreadable: no weight at all
  # set 0 has one gene: its recall is (nearly) entry 1's effect
  np.testing.assert_allclose(np.asarray(recalled)[0], np.asarray(x.memory_lfc)[0, 1], atol=1e-2)


def test_set_transformer_reads_the_memory_but_not_unreadable_entries():
  model = models.get_model("set_tx", n_genes_out=G, hidden=8, layers=1, heads=2,
                           decoder_rank=4, memory=True)
  mask = np.array([[True, False, True], [True, False, True]])
  x = _inputs(mask=mask)
  params = model.init({"params": jax.random.key(0)}, x)
  out = np.asarray(model.apply(params, x))
  hidden_changed = x._replace(memory_lfc=x.memory_lfc.at[:, 1].add(3.0))
  np.testing.assert_allclose(np.asarray(model.apply(params, hidden_changed)), out, atol=1e-6)
  readable_changed = x._replace(memory_lfc=x.memory_lfc.at[:, 0].add(3.0))
  assert np.abs(np.asarray(model.apply(params, readable_changed)) - out).max() > 1e-3
  assert models.reads_memory(model)
  assert not models.reads_memory(models.get_model("set_tx", n_genes_out=G))


def test_hide_memory_hides_a_share_and_never_reveals_own_entries():
  mask = np.ones((400, 50), bool)
  mask[:, 0] = False  # each set's own entry
  hidden = training_data.hide_memory(mask, fraction=0.25, rng=np.random.default_rng(0))
  assert not hidden[:, 0].any()
  np.testing.assert_allclose(1 - hidden[:, 1:].mean(), 0.25, atol=0.01)


def _only_the_start(params):
  """Params with the network's correction zeroed: the output is then the gated priors alone."""
  p = jax.tree_util.tree_map(lambda v: v, params)
  p["params"]["gene_embedding"] = jnp.zeros_like(p["params"]["gene_embedding"])
  p["params"]["gene_bias"] = jnp.zeros_like(p["params"]["gene_bias"])
  return p


def test_gated_nearest_prior_spans_ridge_prior_and_go_nearest_recall():
  model = models.get_model("set_tx", n_genes_out=G, hidden=8, layers=1, heads=2,
                           decoder_rank=4, knockdown=False, nearest_prior=2)
  assert models.reads_memory(model)
  sim = np.zeros((B, K, M))
  sim[:, 0] = [0.9, 0.5, 0.2]
  mask = np.array([[True, True, True], [False, True, True]])  # set 1 may not read entry 0
  rng = np.random.default_rng(3)
  x = _inputs(sim=sim, mask=mask)._replace(
      prior_lfc=jnp.asarray(rng.normal(size=(B, G)), jnp.float32),
      pert_gene_mask=jnp.array([[True, False], [True, False]]))
  params = _only_the_start(model.init({"params": jax.random.key(0)}, x))
  lfc = np.asarray(x.memory_lfc)
  # NumPy reference of the GO-nearest prior: the 2 best readable entries, weighted by cosine.
  near = np.stack([(0.9 * lfc[0, 0] + 0.5 * lfc[0, 1]) / 1.4,
                   (0.5 * lfc[1, 1] + 0.2 * lfc[1, 2]) / 0.7])
  prior = np.asarray(x.prior_lfc)
  for bias, expected in ((30.0, near), (-30.0, prior), (0.0, (near + prior) / 2)):
    params["params"]["nearest_gate_bias"] = jnp.asarray(bias)
    out = np.asarray(model.apply(params, x))
    np.testing.assert_allclose(out, np.broadcast_to(expected[:, None], out.shape), atol=1e-5)
  # The gate grows with the best GO cosine a target may read (0.9 for set 0, 0.5 for set 1).
  params["params"]["nearest_gate_bias"] = jnp.asarray(0.0)
  params["params"]["nearest_gate_slope"] = jnp.asarray(4.0)
  out = np.asarray(model.apply(params, x))[:, 0]
  gate = 1 / (1 + np.exp(-4.0 * np.array([0.9, 0.5])))
  np.testing.assert_allclose(out, gate[:, None] * near + (1 - gate[:, None]) * prior, atol=1e-5)


def test_start_at_prior_predicts_the_gated_priors_before_training():
  model = models.get_model("set_tx", n_genes_out=G, hidden=8, layers=1, heads=2,
                           decoder_rank=4, knockdown=False, nearest_prior=1, start_at_prior=True)
  x = _inputs()._replace(prior_lfc=jnp.ones((B, G)))
  params = model.init({"params": jax.random.key(0)}, x)
  near = np.asarray(x.memory_lfc).mean(1)  # every GO cosine 0: the mean of readable entries
  out = np.asarray(model.apply(params, x))
  gene_sum = np.array([1, 2])[:, None]  # set 1 has two genes: their recalls add
  np.testing.assert_allclose(out, np.broadcast_to(((1 + gene_sum * near) / 2)[:, None], out.shape),
                             atol=1e-5)


def test_own_effect_flag_starts_neutral_and_then_reaches_the_network():
  model = models.get_model("set_tx", n_genes_out=G, hidden=8, layers=1, heads=2,
                           decoder_rank=4, nearest_prior=1, own_effect=True)
  sim = np.zeros((B, K, M))
  sim[:, 0, 2] = 1.0  # entry 2 is the first gene's own single
  x = _inputs(sim=sim)
  np.testing.assert_array_equal(
      np.asarray(baselines.own_effect_read(x.memory_sim, x.memory_mask, x.pert_gene_mask)),
      [[1, 0], [1, 0]])
  hidden = x._replace(memory_mask=x.memory_mask.at[:, 2].set(False))
  assert not np.asarray(baselines.own_effect_read(hidden.memory_sim, hidden.memory_mask,
                                                  hidden.pert_gene_mask)).any()
  params = model.init({"params": jax.random.key(0)}, x)
  # A GO cosine just below 1 picks the same entry but raises no flag.
  no_flag = x._replace(memory_sim=x.memory_sim.at[:, 0, 2].set(0.99))
  out = np.asarray(model.apply(params, x))
  np.testing.assert_allclose(np.asarray(model.apply(params, no_flag)), out, atol=1e-6)
  # The flag's parameters start at 0 and are the only difference from a model without it:
  # same initial values elsewhere, so a run that never reads an own single is unchanged.
  plain = models.get_model("set_tx", n_genes_out=G, hidden=8, layers=1, heads=2,
                           decoder_rank=4, nearest_prior=1)
  plain_params = plain.init({"params": jax.random.key(0)}, x)
  np.testing.assert_allclose(np.asarray(plain.apply(plain_params, x)), out, atol=1e-6)
  # Learned, the flag moves the output of a gene that reads its own single.
  params["params"]["pert_encoder"]["own_effect"] = jnp.ones(8)
  params["params"]["own_gate_slope"] = jnp.asarray(2.0)
  assert np.abs(np.asarray(model.apply(params, no_flag)) - np.asarray(model.apply(params, x))
                ).max() > 1e-4
