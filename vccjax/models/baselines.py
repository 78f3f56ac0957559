"""Baselines as models with the same interface: log fold changes applied to control cells.

* `MeanEffect` ("cell_mean"): every perturbation gets the mean training fold change (the shared
  shift of the VCC cell-mean baseline, applied to the control cells).
* `LinearEffect` ("linear"): ridge regression from the target genes' features to the fold
  changes, in the spirit of Ahlmann-Eltze et al. 2025. Both are fitted in closed form.
* `PriorEffect` ("additive"): the set transformer's closed-form prior on its own: ridge for
  single targets, the sum of the singles for combinations (the additive baseline for doubles).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vccjax.models import effect_prior
from vccjax.models import inputs as model_inputs


def pooled_features(x: model_inputs.ModelInputs):
  """Sum of the target genes' features: [B, F] (a double's effect is built from both)."""
  return jnp.sum(x.pert_genes * x.pert_gene_mask[..., None], axis=1)


class MeanEffect(nn.Module):
  """log fold change = the mean training one, for every cell and perturbation."""
  n_genes_out: int

  @nn.compact
  def __call__(self, x: model_inputs.ModelInputs, *, deterministic: bool = True):
    effect = self.param("effect", nn.initializers.zeros, (self.n_genes_out,))
    return jnp.broadcast_to(effect, x.control_expr.shape[:2] + (self.n_genes_out,))


class LinearEffect(nn.Module):
  """log fold change = pooled target-gene features @ W + b (the same for every cell of a set)."""
  n_genes_out: int

  @nn.compact
  def __call__(self, x: model_inputs.ModelInputs, *, deterministic: bool = True):
    effect = nn.Dense(self.n_genes_out, name="ridge")(pooled_features(x))
    return jnp.broadcast_to(effect[:, None, :], x.control_expr.shape[:2] + (self.n_genes_out,))


class PriorEffect(nn.Module):
  """log fold change = the closed-form prior of `vccjax.models.effect_prior` (no parameters).

  Ridge regression for single targets; for combinations the sum of the singles' fold changes
  (measured when the single trained): the additive model.
  """
  n_genes_out: int

  @nn.compact
  def __call__(self, x: model_inputs.ModelInputs, *, deterministic: bool = True):
    return jnp.broadcast_to(x.prior_lfc[:, None, :],
                            x.control_expr.shape[:2] + (self.n_genes_out,))


def fit_mean_effect(*, effects: np.ndarray) -> dict:
  """Closed-form params of MeanEffect. effects: [targets, genes] training log fold changes."""
  return {"params": {"effect": jnp.asarray(effects.mean(0), jnp.float32)}}


def fit_linear_effect(*, features: np.ndarray, effects: np.ndarray, ridge: float) -> dict:
  """Closed-form ridge params of LinearEffect.

  Args:
    features: [targets, F] pooled target-gene features of the training targets.
    effects: [targets, genes] their log fold changes.
    ridge: L2 penalty, relative to the mean squared feature norm.
  """
  w, b = effect_prior.ridge_fit(features, effects, ridge=ridge)
  return {"params": {"ridge": {"kernel": jnp.asarray(w, jnp.float32),
                               "bias": jnp.asarray(b, jnp.float32)}}}
