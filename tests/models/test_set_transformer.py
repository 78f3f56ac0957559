"""The set transformer: permutation equivariance, padding masks, explicit knockdown, registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vccjax import models
from vccjax.models import ModelInputs

B, S, N_IN, K, F, G = 2, 6, 5, 1, 4, 9


def _inputs(seed=0, control_mask=None):
  rng = np.random.default_rng(seed)
  return ModelInputs(
      control_expr=jnp.asarray(rng.uniform(0, 3, (B, S, N_IN)), jnp.float32),
      control_mask=jnp.ones((B, S), bool) if control_mask is None else control_mask,
      pert_genes=jnp.asarray(rng.normal(size=(B, K, F)), jnp.float32),
      pert_gene_mask=jnp.ones((B, K), bool),
      target_out_pos=jnp.array([[7], [-1]], jnp.int32),  # set 0's target measured, 1's not
      prior_lfc=jnp.asarray(rng.normal(0, 0.1, (B, G)), jnp.float32))


def _model_and_params(**kw):
  model = models.get_model("set_tx", n_genes_out=G, hidden=16, layers=2, heads=2,
                           decoder_rank=4, **kw)
  x = _inputs()
  params = model.init({"params": jax.random.key(0)}, x)
  # Move the knockdown away from identity so the test sees it.
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: v - 1.0 if "knockdown_log_fold" in jax.tree_util.keystr(p) else v, params)
  return model, params, x


def test_permuting_cells_permutes_output():
  model, params, x = _model_and_params()
  perm = np.array([3, 0, 5, 1, 4, 2])
  out = model.apply(params, x)
  x_perm = x._replace(control_expr=x.control_expr[:, perm])
  np.testing.assert_allclose(model.apply(params, x_perm), out[:, perm], rtol=1e-5, atol=1e-6)


def test_padding_cells_do_not_change_real_cells():
  model, params, x = _model_and_params()
  mask = jnp.asarray(np.arange(S) < 4)[None].repeat(B, 0)
  x_masked = x._replace(control_mask=mask)
  out = model.apply(params, x_masked)
  garbage = x_masked._replace(control_expr=x.control_expr.at[:, 4:].set(50.0))
  np.testing.assert_allclose(model.apply(params, garbage)[:, :4], out[:, :4], rtol=1e-5,
                             atol=1e-6)


def test_knockdown_sets_the_target_fold_change():
  model, params, x = _model_and_params()
  out = np.asarray(model.apply(params, x))
  log_f = float(params["params"]["knockdown_log_fold"])
  np.testing.assert_allclose(out[0, :, 7], log_f, rtol=1e-6)  # set 0: its target, gene 7
  # Set 1: target unmeasured, no gene is overwritten (all fold changes come from the decoder).
  model_no_kd = models.get_model("set_tx", n_genes_out=G, hidden=16, layers=2, heads=2,
                                 decoder_rank=4, knockdown=False)
  params_no_kd = {"params": {k: v for k, v in params["params"].items()
                             if not k.startswith("knockdown")}}
  np.testing.assert_allclose(out[1], model_no_kd.apply(params_no_kd, x)[1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out[0, :, :7], model_no_kd.apply(params_no_kd, x)[0, :, :7],
                             rtol=1e-5, atol=1e-6)


def test_apply_fold_multiplies_normalised_counts():
  control = jnp.log1p(jnp.array([0.0, 1.0, 9.0]))
  np.testing.assert_allclose(models.apply_fold(control, jnp.log(0.5)),
                             np.log1p([0.0, 0.5, 4.5]), rtol=1e-6)


def test_double_perturbation_is_order_invariant():
  model = models.get_model("set_tx", n_genes_out=G, hidden=16, layers=1, heads=2, decoder_rank=4)
  rng = np.random.default_rng(1)
  x = ModelInputs(control_expr=jnp.asarray(rng.uniform(0, 2, (1, S, N_IN)), jnp.float32),
                  control_mask=jnp.ones((1, S), bool),
                  pert_genes=jnp.asarray(rng.normal(size=(1, 2, F)), jnp.float32),
                  pert_gene_mask=jnp.ones((1, 2), bool),
                  target_out_pos=jnp.array([[1, 5]], jnp.int32),
                  prior_lfc=jnp.zeros((1, G), jnp.float32))
  params = model.init({"params": jax.random.key(0)}, x)
  swapped = x._replace(pert_genes=x.pert_genes[:, ::-1], target_out_pos=x.target_out_pos[:, ::-1])
  np.testing.assert_allclose(model.apply(params, swapped), model.apply(params, x), rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("name", ["mean_effect", "linear"])
def test_baselines_share_the_interface(name):
  model = models.get_model(name, n_genes_out=G)
  x = _inputs()
  params = model.init({"params": jax.random.key(0)}, x)
  assert model.apply(params, x).shape == (B, S, G)


def test_unknown_model_name_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown model"):
    models.get_model("gears", n_genes_out=G)
