"""What every model consumes and produces.

Models predict, for every control cell and gene, a natural-log fold change of its normalised
counts: the perturbed cell is log1p(expm1(control) * exp(log_fold)). A change is thus relative to
the gene's level, as in the metric's fold changes, and a gene a cell did not detect stays
undetected, so rarely detected genes cannot pick up spurious shifts.
"""

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
    target_out_pos: [B, K] column of each target gene among the output genes, -1 if unmeasured.
    prior_lfc: [B, G] closed-form (ridge) prior on each perturbation's log fold changes.
    memory_lfc: [B, M, G] the measured log fold changes of the M training perturbations (the
      memory; each entry's own target genes hold the other entries' mean there). M = 0 when the
      model does not read a memory.
    memory_keys: [B, M, F] the pooled features of the memory's perturbations.
    memory_sim: [B, K, M] IDF-weighted GO cosine of each target gene with each memory entry.
    memory_mask: [B, M] True where the entry may be read (never a perturbation's own entry).
  """
  control_expr: jax.Array
  control_mask: jax.Array
  pert_genes: jax.Array
  pert_gene_mask: jax.Array
  target_out_pos: jax.Array
  prior_lfc: jax.Array
  memory_lfc: jax.Array | None = None
  memory_keys: jax.Array | None = None
  memory_sim: jax.Array | None = None
  memory_mask: jax.Array | None = None


MAX_LOG_FOLD = 10.0  # e^10 ~ 22,000-fold: beyond any real perturbation, keeps exp() finite


def apply_fold(control_log1p, log_fold):
  """Perturbed log1p expression: log1p(expm1(control) * exp(log_fold)); shapes broadcast."""
  log_fold = jnp.clip(log_fold, -MAX_LOG_FOLD, MAX_LOG_FOLD)
  return jnp.log1p(jnp.expm1(control_log1p) * jnp.exp(log_fold))


def apply_knockdown(log_fold, x: ModelInputs, knockdown_log_fold):
  """Sets the fold change of each measured target gene to the knockdown's.

  Args:
    log_fold: [B, S, G] predicted log fold changes over the output genes.
    x: the model inputs (target positions).
    knockdown_log_fold: log of the share of its expression a target keeps (CRISPRi < 0,
      CRISPRa > 0), broadcastable to [B, S, K].
  Returns:
    [B, S, G] with the target genes' entries replaced.
  """
  valid = (x.target_out_pos >= 0) & x.pert_gene_mask  # [B, K]
  onehot = jax.nn.one_hot(jnp.maximum(x.target_out_pos, 0), log_fold.shape[-1],
                          dtype=log_fold.dtype) * valid[..., None]  # [B, K, G]
  keep = 1.0 - jnp.clip(onehot.sum(1), 0.0, 1.0)  # [B, G]
  knocked = jnp.broadcast_to(knockdown_log_fold, log_fold.shape[:2] + onehot.shape[1:2])
  return log_fold * keep[:, None, :] + jnp.einsum("bsk,bkg->bsg", knocked, onehot)
