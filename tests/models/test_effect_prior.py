"""Ridge prior: equals the primal ridge solution; leave-one-out never sees its own target."""

import numpy as np

from vccjax.models import effect_prior


def test_ridge_fit_equals_the_primal_solution():
  rng = np.random.default_rng(0)
  f, y = rng.normal(size=(12, 30)), rng.normal(size=(12, 5))
  w, b = effect_prior.ridge_fit(f, y, ridge=0.3)
  fc, yc = f - f.mean(0), y - y.mean(0)
  lam = 0.3 * (fc**2).sum(1).mean()
  w_ref = np.linalg.solve(fc.T @ fc + lam * np.eye(30), fc.T @ yc)
  np.testing.assert_allclose(w, w_ref, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(f @ w + b, fc @ w_ref + y.mean(0), rtol=1e-6, atol=1e-9)


def test_leave_one_out_equals_explicit_fits_without_each_row():
  rng = np.random.default_rng(4)
  f, y = rng.normal(size=(15, 40)), rng.normal(size=(15, 200))
  for ridge in (0.01, 1.0, 100.0):
    explicit = np.stack([
        f[i] @ w + b for i in range(15)
        for w, b in [effect_prior.ridge_fit(np.delete(f, i, 0), np.delete(y, i, 0), ridge=ridge)]])
    np.testing.assert_allclose(effect_prior.leave_one_out(f, y, ridge=ridge), explicit,
                               rtol=1e-10, atol=1e-12)


def test_leave_one_out_predictions_do_not_depend_on_the_left_out_value():
  rng = np.random.default_rng(1)
  f, y = rng.normal(size=(8, 6)), rng.normal(size=(8, 3))
  _, loo, _ = effect_prior.ridge_prior(train_features=f, train_lfc=y, ridge=0.1)
  y2 = y.copy()
  y2[3] += 100.0  # changing target 3's own value must not move its prior
  _, loo2, _ = effect_prior.ridge_prior(train_features=f, train_lfc=y2, ridge=0.1)
  np.testing.assert_allclose(loo2[3], loo[3], rtol=1e-5)
  assert not np.allclose(loo2[4], loo[4])


def test_prior_recovers_a_linear_map():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(40, 4))
  y = f @ rng.normal(size=(4, 7)) + 0.5
  predict, _, _ = effect_prior.ridge_prior(train_features=f, train_lfc=y, ridge=1e-6)
  new = rng.normal(size=(3, 4))
  np.testing.assert_allclose(predict(new), new @ np.linalg.lstsq(f, y - 0.5, rcond=None)[0] + 0.5,
                             rtol=1e-3, atol=1e-3)


def test_auto_ridge_picks_weak_penalty_for_signal_and_strong_for_noise():
  rng = np.random.default_rng(3)
  f = rng.normal(size=(30, 5))
  signal = f @ rng.normal(size=(5, 4))
  _, _, r_signal = effect_prior.ridge_prior(train_features=f, train_lfc=signal, ridge=0)
  _, _, r_noise = effect_prior.ridge_prior(train_features=f, train_lfc=rng.normal(size=(30, 4)),
                                           ridge=0)
  assert r_signal == min(effect_prior.RIDGE_GRID) and r_noise == max(effect_prior.RIDGE_GRID)
