"""Predicted cells: UMI counts drawn from control cells and fold changes."""

import numpy as np
import scipy.sparse as sp

from vccjax.data import normalize
from vccjax.experiment import predicted_cells


def _controls(n=4000, g=6, seed=0):
  rng = np.random.default_rng(seed)
  totals = rng.lognormal(np.log(1000), 0.3, n)
  rates = np.array([0.001, 0.01, 0.05, 0.1, 0.2, 0.3])[:g]
  counts = rng.poisson(totals[:, None] * rates).astype(float)
  return counts, totals


def test_expected_counts_follow_the_fold_change():
  counts, totals = _controls()
  target_sum = float(np.median(totals))
  control_counts = (counts / (totals / target_sum)[:, None]).mean(0)
  log_fold = np.tile(np.log([0.3, 2.0, 0.5, 1.0, 3.0, 0.8]), (len(counts), 1))
  out = predicted_cells.sample_perturbed_counts(counts, log_fold, totals=totals,
                                                target_sum=target_sum,
                                                control_counts=control_counts,
                                                rng=np.random.default_rng(1))
  assert np.array_equal(out, np.round(out)) and out.min() >= 0
  got = (out / (totals / target_sum)[:, None]).mean(0)
  np.testing.assert_allclose(got, control_counts * np.exp(log_fold[0]), rtol=0.06)
  # Thinning: down-regulated genes gain zeros; nothing is created where f < 1.
  assert ((out == 0) >= (counts == 0))[:, [0, 2, 5]].all()
  assert (out[:, 0] == 0).mean() > (counts[:, 0] == 0).mean() + 0.2
  # Up-regulation can switch a gene on in a cell that had not detected it.
  assert ((counts[:, 1] == 0) & (out[:, 1] > 0)).any()


def test_the_draw_is_recentred_on_all_controls():
  counts, totals = _controls(n=300, seed=2)
  target_sum = float(np.median(totals))
  pool_mean = (counts / (totals / target_sum)[:, None]).mean(0) * 1.25  # a richer control pool
  out = predicted_cells.sample_perturbed_counts(counts, np.zeros_like(counts), totals=totals,
                                                target_sum=target_sum, control_counts=pool_mean,
                                                rng=np.random.default_rng(3))
  got = (out / (totals / target_sum)[:, None]).mean(0)
  np.testing.assert_allclose(got[2:], pool_mean[2:], rtol=0.05)


def test_same_generator_state_gives_the_same_cells():
  counts, totals = _controls(n=50)
  kw = dict(totals=totals, target_sum=1000.0, control_counts=counts.mean(0))
  lf = np.full(counts.shape, -0.5)
  a = predicted_cells.sample_perturbed_counts(counts, lf, rng=np.random.default_rng(5), **kw)
  b = predicted_cells.sample_perturbed_counts(counts, lf, rng=np.random.default_rng(5), **kw)
  np.testing.assert_array_equal(a, b)


def test_rounding_keeps_totals_and_is_unbiased():
  rng = np.random.default_rng(7)
  mean = rng.gamma(0.5, 1.0, (200, 5))
  out = predicted_cells.round_keeping_totals(mean, np.random.default_rng(8))
  assert np.array_equal(out, np.round(out))
  assert (np.abs(out - mean) < 1).all()
  assert (np.abs(out.sum(0) - mean.sum(0)) <= 1 + 1e-9).all()
  runs = np.mean([predicted_cells.round_keeping_totals(mean[:3], np.random.default_rng(s))
                  for s in range(2000)], axis=0)
  np.testing.assert_allclose(runs, mean[:3], atol=0.05)


def test_blocked_log1p_is_the_log1p_of_the_sampled_counts_bit_for_bit():
  rng = np.random.default_rng(5)
  n, g = 300, 1000
  counts = rng.poisson(rng.gamma(0.3, 3.0, g), (n, g)).astype(np.float64)
  counts[:50, :3] = 5000  # beyond the log1p table
  totals = counts.sum(1) + 1.0
  log_fold = rng.normal(0, 0.7, (n, g)).astype(np.float32)
  control = rng.gamma(0.3, 3.0, g)
  common = dict(totals=totals, target_sum=float(np.median(totals)), control_counts=control)
  whole = predicted_cells.sample_perturbed_counts(counts, log_fold, rng=np.random.default_rng(9),
                                                  **common)
  expected = np.minimum(normalize.log1p_normalize(whole, target_sum=common["target_sum"],
                                                  totals=totals), predicted_cells._LOG1P_CEIL)
  for block in (1, 77, 256, 5000):
    rng = np.random.default_rng(9)  # the draws of `sample_perturbed_counts`, in its order
    got = predicted_cells.perturbed_log1p(counts, log_fold, order_keys=rng.random((n, g)),
                                          start=rng.random(g), genes_per_block=block, **common)
    assert got.dtype == np.float32 and sp.isspmatrix_csr(got)
    np.testing.assert_array_equal(got.toarray(), expected.astype(np.float32))


def test_draw_controls_when_the_targets_contexts_hold_fewer_controls_than_cells():
  """Training targets' cells sit in context 1 only, which has 3 controls: 5 cells are drawn
  from those 3 (with replacement), never from context 0 (no ValueError from rng.choice)."""
  from types import SimpleNamespace
  target_gene = np.array(["non-targeting"] * 10 + ["A"] * 4 + ["B"] * 4)
  context = np.array([0] * 7 + [1] * 3 + [1] * 8)
  ds = SimpleNamespace(
      control_label="non-targeting", context=context, context_names=["b0", "b1"],
      labels=SimpleNamespace(target_gene=target_gene, is_control=target_gene == "non-targeting"),
      cells_of=lambda t: np.flatnonzero(target_gene == t))
  exp = SimpleNamespace(dataset=ds, split=SimpleNamespace(train=["A", "B"]))
  drawn = predicted_cells.draw_controls(exp, np.random.default_rng(0), 5)
  assert len(drawn) == 5 and set(drawn) <= {7, 8, 9}
