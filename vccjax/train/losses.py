"""Distribution losses between a predicted and an observed cell set, with masks.

All take sets x: [S1, D], y: [S2, D] and boolean masks [S1], [S2] (padding excluded), and are
vmapped over the batch by `batched`. Distances use a safe square root so two coincident cells give
a finite (zero) gradient instead of NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _centre(x, y, wx, wy):
  """Shifts both sets by the (masked) mean of y: |x|^2 + |y|^2 - 2xy cancels badly in float32
  when cells sit far from the origin, as log1p expression does. Distances are unchanged."""
  centre = jax.lax.stop_gradient((wy @ y) / jnp.maximum(wy.sum(), 1.0))
  return x - centre, y - centre


def _sq_dists(x, y):
  """Pairwise squared Euclidean distances [S1, S2], clipped at 0 against round-off."""
  d2 = (jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None, :] - 2.0 * x @ y.T)
  return jnp.maximum(d2, 0.0)


def _safe_sqrt(d2, eps: float = 1e-12):
  """sqrt with a zero gradient at 0 (the double-where trick keeps NaN out of the backward pass)."""
  positive = d2 > eps
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)


def _weighted_mean(m, wx, wy):
  """sum_ij wx_i wy_j m_ij / (sum wx sum wy)."""
  return (wx @ m @ wy) / jnp.maximum(wx.sum() * wy.sum(), 1e-12)


def energy_distance(x, y, x_mask, y_mask):
  """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic) between masked sets. Scalar."""
  wx, wy = x_mask.astype(x.dtype), y_mask.astype(y.dtype)
  x, y = _centre(x, y, wx, wy)
  xy = _weighted_mean(_safe_sqrt(_sq_dists(x, y)), wx, wy)
  xx = _weighted_mean(_safe_sqrt(_sq_dists(x, x)), wx, wx)
  yy = _weighted_mean(_safe_sqrt(_sq_dists(y, y)), wy, wy)
  return 2.0 * xy - xx - yy


def mmd_rbf(x, y, x_mask, y_mask, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)):
  """Squared MMD (V-statistic) with a sum of RBF kernels.

  Bandwidths are multiples of the observed set's mean pairwise squared distance (gradient
  stopped), so the loss adapts to the data's scale.
  """
  wx, wy = x_mask.astype(x.dtype), y_mask.astype(y.dtype)
  x, y = _centre(x, y, wx, wy)
  dxy, dxx, dyy = _sq_dists(x, y), _sq_dists(x, x), _sq_dists(y, y)
  scale = jax.lax.stop_gradient(jnp.maximum(_weighted_mean(dyy, wy, wy), 1e-6))

  def kernel(d2):
    return sum(jnp.exp(-d2 / (2.0 * b * scale)) for b in bandwidths)

  return (_weighted_mean(kernel(dxx), wx, wx) + _weighted_mean(kernel(dyy), wy, wy)
          - 2.0 * _weighted_mean(kernel(dxy), wx, wy))


def masked_mean(x, mask):
  """Mean of x: [S, D] over rows where mask: [S] is True -> [D]."""
  w = mask.astype(x.dtype)
  return (w @ x) / jnp.maximum(w.sum(), 1.0)


def batched(loss_fn):
  """Turns a per-set loss into one over [B, S, D] sets, averaged over the batch."""
  def fn(x, y, x_mask, y_mask):
    return jnp.mean(jax.vmap(loss_fn)(x, y, x_mask, y_mask))
  return fn


DISTRIBUTION_LOSSES = {"energy": energy_distance, "mmd": mmd_rbf}
