"""The table-driven count scaling gives NumPy's `log1p(count / factor)` bit for bit."""

import numpy as np

from vccjax.data import count_log1p, normalize


def _counts(rng, n):
  """Counts as files hold them, with every case the table must not get wrong."""
  values = rng.poisson(rng.gamma(0.7, 6.0, n)).astype(np.float32)
  values[rng.random(n) < 0.05] *= 300  # beyond the table
  values[rng.random(n) < 0.01] += np.float32(0.0004)  # "counts" to cell-eval (fraction <= 1e-3)
  values[rng.random(n) < 0.01] = -0.0
  edges = [count_log1p.TABLE_SIZE - 1, count_log1p.TABLE_SIZE, 1.0, 0.0, 1e7]
  values[:len(edges)] = edges
  return values


def _reference(values, factor_per_value):
  return np.log1p(np.divide(values, factor_per_value))


def test_tables_hold_numpys_own_values():
  factor = np.array([0.5, 1.7, 3.0], np.float32)
  table = count_log1p.log1p_table(factor)
  k = np.arange(count_log1p.TABLE_SIZE, dtype=np.float32)
  for r, f in enumerate(factor):
    np.testing.assert_array_equal(table[r], np.log1p(k / f))


def test_scale_rows_matches_numpy_bits():
  rng = np.random.default_rng(0)
  per_row = rng.integers(0, 400, 60)
  per_row[[5, 6]] = 0  # empty rows
  indptr = np.r_[0, np.cumsum(per_row)]
  values = _counts(rng, int(indptr[-1]))
  totals = rng.random(60) * 5e4
  totals[7] = 0  # an all-zero cell: factor 1
  factor = normalize.size_factors(totals, target_sum=2.1e4)
  expected = _reference(values, np.repeat(factor, per_row))
  count_log1p.scale_rows(values, indptr, factor=factor, table=count_log1p.log1p_table(factor))
  np.testing.assert_array_equal(values.view(np.uint32), expected.view(np.uint32))


def test_scale_cells_matches_scale_rows():
  rng = np.random.default_rng(1)
  cells = rng.integers(0, 50, 5000).astype(np.int32)
  values = _counts(rng, 5000)
  factor = normalize.size_factors(rng.random(50) * 5e4 + 1, target_sum=2.1e4)
  expected = _reference(values, factor[cells])
  count_log1p.scale_cells(values, cells, factor=factor, table=count_log1p.log1p_table(factor))
  np.testing.assert_array_equal(values.view(np.uint32), expected.view(np.uint32))
