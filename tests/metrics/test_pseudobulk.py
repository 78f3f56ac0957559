"""Group means (pseudobulks) against NumPy."""

import numpy as np
import scipy.sparse as sp

from vccjax import metrics


def test_group_means_equal_numpy_for_dense_and_sparse():
  rng = np.random.default_rng(0)
  x = ((rng.random((500, 70)) < 0.3) * rng.random((500, 70))).astype(np.float32)
  group = rng.integers(-1, 6, 500)
  ref = np.stack([x[group == g].astype(np.float64).mean(0) for g in range(6)])
  for inp in (x, sp.csr_matrix(x), sp.csc_matrix(x), sp.coo_matrix(x)):
    np.testing.assert_allclose(metrics.group_means(log1p_expr=inp, group=group, n_groups=6), ref,
                               rtol=1e-12, atol=1e-15)
