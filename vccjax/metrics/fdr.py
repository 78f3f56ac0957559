"""Benjamini-Hochberg adjusted p-values, as `scipy.stats.false_discovery_control(method="bh")`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def benjamini_hochberg(p_values, *, per_row: bool = False) -> np.ndarray:
  """BH-adjusted p-values (q-values), in float64.

  Args:
    p_values: [perturbations, genes] p-values.
    per_row: adjust each row on its own (one family per perturbation, cell-eval >= 0.7) rather
      than all values as one family (pdex 0.1.x under cell-eval 0.6, the VCC 2025 rule).

  Returns:
    [perturbations, genes] adjusted p-values.
  """
  with jax.enable_x64(True):
    p = jnp.asarray(p_values, jnp.float64)
    flat = p if per_row else p.reshape(1, -1)
    return np.asarray(_bh_rows(flat)).reshape(p.shape)


@jax.jit
def _bh_rows(p):
  """p: [families, tests] -> adjusted; scipy's arithmetic: p * (m / i), then a cumulative
  minimum from the largest p down."""
  m = p.shape[1]
  order = jnp.argsort(p, axis=1)
  ranked = jnp.take_along_axis(p, order, axis=1)
  ranked = ranked * (m / jnp.arange(1, m + 1, dtype=p.dtype))
  ranked = jnp.clip(jax.lax.cummin(ranked, axis=1, reverse=True), 0.0, 1.0)
  rows = jnp.arange(p.shape[0])[:, None]
  return jnp.zeros_like(p).at[rows, order].set(ranked)
