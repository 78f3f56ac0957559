"""Pure, jitted training and prediction steps (no I/O).

The train step takes a donated `TrainState`, derives its PRNG key as `fold_in(key, step)` (so a
resumed run draws the same dropout masks) and returns the new state and scalar metrics.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from vccjax.models import ModelInputs, apply_fold
from vccjax.train import losses


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


class TrainBatch(NamedTuple):
  """Model inputs plus the observed targets of the loss.

  Attributes:
    inputs: ModelInputs of the control sets.
    pert_expr: [B, S, n_in] observed perturbed cells on the input genes.
    pert_mask: [B, S] True for real perturbed cells.
    lfc: [B, G] log fold change of each set's target over all output genes (its pseudobulk
      target, `PerturbDataset.target_lfc`).
  """
  inputs: ModelInputs
  pert_expr: jax.Array
  pert_mask: jax.Array
  lfc: jax.Array


def make_optimizer(*, lr: float, steps: int, warmup_steps: int, weight_decay: float,
                   clip_norm: float) -> optax.GradientTransformation:
  """AdamW with linear warm-up, cosine decay and global-norm gradient clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=lr, warmup_steps=max(1, min(warmup_steps, steps - 1)),
      decay_steps=max(steps, 2), end_value=lr * 0.01)
  return optax.chain(optax.clip_by_global_norm(clip_norm),
                     optax.adamw(schedule, weight_decay=weight_decay))


def loss_terms(params, *, model, batch: TrainBatch, key, in_genes, distribution: str):
  """(distribution loss, pseudobulk loss) of one batch.

  The distribution loss compares predicted and observed cells on the input genes; the pseudobulk
  loss compares each set's mean predicted log fold change with its target's, on all genes.
  in_genes: [n_in] positions of the input genes among the output genes.
  """
  log_fold = model.apply(params, batch.inputs, deterministic=False, rngs={"dropout": key})
  pred_in = apply_fold(batch.inputs.control_expr, log_fold[..., in_genes])
  dist_fn = losses.batched(losses.DISTRIBUTION_LOSSES[distribution])
  dist = dist_fn(pred_in, batch.pert_expr, batch.inputs.control_mask, batch.pert_mask)
  mean_fold = jax.vmap(losses.masked_mean)(log_fold, batch.inputs.control_mask)
  pseudobulk = jnp.mean((mean_fold - batch.lfc) ** 2)
  return dist, pseudobulk


def make_train_step(*, model, optimizer, in_genes, distribution: str, distribution_weight: float,
                    pseudobulk_weight: float, state_sharding=None, batch_sharding=None):
  """A jitted `(state, batch, key) -> (state, metrics)` with the state donated."""
  in_genes = jnp.asarray(in_genes)

  def step_fn(state: TrainState, batch: TrainBatch, key):
    step_key = jax.random.fold_in(key, state.step)

    def total(params):
      dist, pb = loss_terms(params, model=model, batch=batch, key=step_key, in_genes=in_genes,
                            distribution=distribution)
      return distribution_weight * dist + pseudobulk_weight * pb, (dist, pb)

    (loss, (dist, pb)), grads = jax.value_and_grad(total, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "distribution_loss": dist, "pseudobulk_loss": pb,
               "grad_norm": optax.global_norm(grads)}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  kwargs = {}
  if state_sharding is not None:
    kwargs = dict(in_shardings=(state_sharding, batch_sharding, None),
                  out_shardings=(state_sharding, None))
  return jax.jit(step_fn, donate_argnums=(0,), **kwargs)


def make_predict_step(model, *, ensemble: int = 1):
  """A jitted `(params, inputs) -> log fold change [B, S, G]` (no dropout).

  ensemble > 1: `params` are that many members stacked on a leading axis
  (`loop.stack_members`); the prediction is the mean of their log fold changes.
  """
  def apply(params, inputs):
    return model.apply(params, inputs, deterministic=True)
  if ensemble == 1:
    return jax.jit(apply)
  return jax.jit(lambda params, inputs: jnp.mean(
      jax.vmap(apply, in_axes=(0, None))(params, inputs), axis=0))


def init_state(*, model, optimizer, example_inputs: ModelInputs, key) -> TrainState:
  params = model.init({"params": key, "dropout": key}, example_inputs)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params))
