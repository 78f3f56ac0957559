"""What every model consumes, and the explicit knockdown of the target genes."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ModelInputs(NamedTuple):
  """A batch of control sets and the perturbation to apply to each (a JAX pytree).

  Attributes:
    control_expr: [B, S, n_in] log1p expression of control cells on the input genes.
    control_mask: [B, S] True for real cells (False: padding).
    pert_genes: [B, K, F] features of the (up to K) target genes of each set's perturbation.
    pert_gene_mask: [B, K] True where a slot holds a target gene.
    target_in_pos: [B, K] column of each target gene among the input genes, -1 if unmeasured.
    target_out_pos: [B, K] column of each target gene among the output genes, -1 if unmeasured.
  """
  control_expr: jax.Array
  control_mask: jax.Array
  pert_genes: jax.Array
  pert_gene_mask: jax.Array
  target_in_pos: jax.Array
  target_out_pos: jax.Array


def apply_knockdown(residual, x: ModelInputs, log_fold):
  """Sets the residual of each measured target gene to that of scaling its expression by f.

  The target's predicted log1p expression is log1p(exp(log_fold) * expm1(control)), i.e. its
  normalised counts are multiplied by f = exp(log_fold).

  Args:
    residual: [B, S, G] predicted residuals over the output genes.
    x: the model inputs (control expression and target positions).
    log_fold: log f, broadcastable to [B, S, K].
  Returns:
    [B, S, G] residuals with the target genes' entries replaced.
  """
  valid = (x.target_in_pos >= 0) & (x.target_out_pos >= 0) & x.pert_gene_mask  # [B, K]
  ctrl = jnp.take_along_axis(x.control_expr, jnp.maximum(x.target_in_pos, 0)[:, None, :],
                             axis=2)  # [B, S, K]
  knocked = jnp.log1p(jnp.exp(log_fold) * jnp.expm1(ctrl)) - ctrl
  onehot = jax.nn.one_hot(jnp.maximum(x.target_out_pos, 0), residual.shape[-1],
                          dtype=residual.dtype) * valid[..., None]  # [B, K, G]
  keep = 1.0 - jnp.clip(onehot.sum(1), 0.0, 1.0)  # [B, G]
  return residual * keep[:, None, :] + jnp.einsum("bsk,bkg->bsg", knocked, onehot)
