"""Baselines as models with the same interface: log fold changes applied to control cells.

* `MeanEffect` ("mean_effect"): every perturbation gets the mean training fold change (the
  shared shift of the VCC cell-mean baseline, applied to the control cells).
* `NearestEffect` ("nearest", "nearest_k"): the measured fold changes of the training
  perturbation(s) whose GO annotations are most like the target's (IDF-weighted cosine, read
  from the memory of `vccjax.experiment.effect_memory`), plus the target gene's own knockdown.
* `LinearEffect` ("linear"): ridge regression from the target genes' features to the fold
  changes, in the spirit of Ahlmann-Eltze et al. 2025. Both are fitted in closed form.
* `PriorEffect` ("additive"): the set transformer's closed-form prior on its own: ridge for
  single targets, the sum of the singles for combinations (the additive baseline for doubles).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
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


class NearestEffect(nn.Module):
  """log fold change = the similarity-weighted mean of the k most similar training effects.

  For each target gene, the k memory entries with the highest IDF-weighted GO cosine that it may
  read (k = 1: `nearest`, the single most similar training target) are averaged with weights
  equal to their similarities; a combination sums its genes' recalls. A gene similar to nothing
  (no GO annotation: every similarity 0) recalls the mean of the readable entries. The measured
  target genes then get the knockdown `knockdown_log_fold` (the median over training targets).
  """
  n_genes_out: int
  neighbours: int = 1
  memory: ClassVar[bool] = True

  @nn.compact
  def __call__(self, x: model_inputs.ModelInputs, *, deterministic: bool = True):
    recalled = nearest_recall(x.memory_lfc, x.memory_sim, x.memory_mask, x.pert_gene_mask,
                              k=self.neighbours)
    knock = self.param("knockdown_log_fold", nn.initializers.zeros, ())
    log_fold = jnp.broadcast_to(recalled[:, None, :],
                                x.control_expr.shape[:2] + (self.n_genes_out,))
    return model_inputs.apply_knockdown(log_fold, x, knock)


def nearest_recall(memory_lfc, memory_sim, memory_mask, gene_mask, *, k: int):
  """[B, G] summed over target genes of the similarity-weighted mean of the k best entries.

  memory_lfc: [B, M, G]; memory_sim: [B, K, M]; memory_mask: [B, M]; gene_mask: [B, K].
  Ties keep the lower entry index (`lax.top_k`).
  """
  m = memory_lfc.shape[1]
  k = min(k, m)
  readable = jnp.broadcast_to(memory_mask[:, None, :], memory_sim.shape)
  score = jnp.where(readable, memory_sim, -jnp.inf)
  top_score, top = jax.lax.top_k(score, k)  # [B, K, k]
  weight = jnp.where(jnp.isfinite(top_score), jnp.maximum(top_score, 0.0), 0.0)
  onehot = jax.nn.one_hot(top, m, dtype=memory_lfc.dtype) * weight[..., None]  # [B, K, k, M]
  weights = onehot.sum(2)  # [B, K, M]
  # Similar to nothing: the mean of the readable entries.
  mean_weights = readable.astype(memory_lfc.dtype)
  total = weights.sum(-1, keepdims=True)
  weights = jnp.where(total > 0, weights / jnp.maximum(total, 1e-12),
                      mean_weights / jnp.maximum(mean_weights.sum(-1, keepdims=True), 1.0))
  per_gene = jnp.einsum("bkm,bmg->bkg", weights, memory_lfc)
  return jnp.sum(per_gene * gene_mask[..., None], axis=1)


def own_effect_read(memory_sim, memory_mask, gene_mask):
  """[B, K] 1.0 where a target gene may read its own measured single (similarity exactly 1 in
  `effect_memory.read_fields`, whose GO cosines stay below it), else 0.

  memory_sim: [B, K, M]; memory_mask: [B, M]; gene_mask: [B, K].
  """
  readable = memory_mask[:, None, :] & (memory_sim >= 1.0)
  return (readable.any(-1) & gene_mask).astype(memory_sim.dtype)


def fit_nearest_effect(*, effects: np.ndarray, target_columns: np.ndarray) -> dict:
  """Closed-form params of NearestEffect: the knockdown is the log of the median share of its
  expression a measured training target gene keeps.

  Args:
    effects: [targets, genes] training log fold changes.
    target_columns: [targets] column of each training target's gene, -1 if not measured
      (combinations: -1).
  """
  measured = target_columns >= 0
  if not measured.any():
    return {"params": {"knockdown_log_fold": jnp.zeros((), jnp.float32)}}
  kept = np.exp(effects[np.flatnonzero(measured), target_columns[measured]])
  return {"params": {"knockdown_log_fold": jnp.asarray(np.log(np.median(kept)), jnp.float32)}}


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
