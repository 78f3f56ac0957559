"""Two-sided Wilcoxon rank-sum (Mann-Whitney U) tests of every perturbation against control.

The asymptotic test of `scipy.stats.mannwhitneyu(x, y, method="asymptotic")` (what pdex runs for
cell-eval): normal approximation with tie correction and a 0.5 continuity correction,
`p = 2 * ndtr(-(max(U1, n1*n2 - U1) - n1*n2/2 - 0.5) / s)` clipped to [0, 1]. A gene whose
values are all equal has s = 0 and p = 1. Vectorised over perturbations and genes from the
rank sums of `ranksum.py`; zeros are added here in closed form (they are all tied and lie below
every nonzero value). Computed in float64: U reaches n1*n2/2 and the tie term n^3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vccjax.metrics import ranksum


def mannwhitney_vs_control(*, sums: ranksum.GroupRankSums) -> tuple[np.ndarray, np.ndarray]:
  """U statistics and two-sided asymptotic p-values of each group against group 0 (control).

  Args:
    sums: rank sums of `ranksum.rank_sums` ([genes, groups], group 0 the control).

  Returns:
    (u_statistic, p_value), each [groups - 1, genes] float64; U is scipy's U1, for the
    perturbed group's sample.
  """
  with jax.enable_x64(True):
    u, p = _u_and_p(*(jnp.asarray(a, jnp.float64) for a in (
        sums.group_sizes, sums.nonzero, sums.control_at_or_below, sums.control_equal,
        sums.tie_terms)))
    return np.asarray(u), np.asarray(p)


@jax.jit
def _u_and_p(sizes, nonzero, at_or_below, equal, ties):
  n_ctrl, n_pert = sizes[0], sizes[1:, None]                 # [], [P, 1]
  ctrl_zeros = n_ctrl - nonzero[:, 0]                        # [G]
  pert_nonzero = nonzero[:, 1:].T                            # [P, G]
  pert_zeros = n_pert - pert_nonzero
  # Nonzero values sit above every control zero; zeros tie with the control's zeros.
  two_u = (2.0 * at_or_below[:, 1:].T - equal[:, 1:].T + 2.0 * pert_nonzero * ctrl_zeros
           + pert_zeros * ctrl_zeros)
  u1 = two_u / 2.0
  zeros = pert_zeros + ctrl_zeros
  tie_term = ties[:, :1].T + ties[:, 1:].T + zeros**3 - zeros
  n = n_pert + n_ctrl
  s = jnp.sqrt(n_pert * n_ctrl / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0))))
  u = jnp.maximum(u1, n_pert * n_ctrl - u1)
  z = (u - n_pert * n_ctrl / 2.0 - 0.5) / s
  p = jnp.clip(2.0 * jax.scipy.special.ndtr(-z), 0.0, 1.0)
  return u1, jnp.where(jnp.isnan(p), 1.0, p)
