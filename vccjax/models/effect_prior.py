"""A closed-form prior on each target's fold changes: ridge regression from its gene features.

With a few dozen training targets, a network that maps features to 18,080 fold changes mostly
memorises; ridge regression (Ahlmann-Eltze et al. 2025) is the strong, stable estimate. The set
transformer starts from this prior and learns corrections. A training target's prior is its
leave-one-out prediction, so the model never sees a prior that already contains the answer.
"""

from __future__ import annotations

import numpy as np


def ridge_fit(features: np.ndarray, targets: np.ndarray, *, ridge: float):
  """(weights [F, G], intercept [G]) of ridge regression with a centred intercept.

  Args:
    features: [T, F] one row per training target.
    targets: [T, G] values to predict (e.g. log fold changes).
    ridge: L2 penalty relative to the mean squared (centred) feature norm.
  """
  f_mean, y_mean = features.mean(0), targets.mean(0)
  f, y = features - f_mean, targets - y_mean
  lam = ridge * max(float((f**2).sum(1).mean()), 1e-12)
  # Dual form: cheap when targets << features, exact either way.
  alpha = np.linalg.solve(f @ f.T + lam * np.eye(len(f)), y)
  w = f.T @ alpha
  return w, y_mean - f_mean @ w


RIDGE_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def leave_one_out(features: np.ndarray, targets: np.ndarray, *, ridge: float) -> np.ndarray:
  """[T, G] prediction for each training row from a ridge fit without it.

  The same fits as `ridge_fit` on the other rows (their own centring and penalty), without
  forming any fit's weights: row i's prediction is m + v @ (Y_S - m) with m the other rows' mean
  target and v = (K_S + lam_S I)^-1 F_S (f_i - mean_S f), so all rows together cost one
  [T, T] x [T, G] product instead of T solves with G right-hand sides. Equal to the explicit
  fits to rounding.
  """
  n = len(features)
  features = np.asarray(features, np.float64)
  targets = np.asarray(targets, np.float64)
  weights = np.zeros((n, n))  # row i: v on the other rows, 0 on row i
  for i in range(n):
    keep = np.arange(n) != i
    f_mean = features[keep].mean(0)
    f = features[keep] - f_mean
    lam = ridge * max(float((f**2).sum(1).mean()), 1e-12)
    weights[i, keep] = np.linalg.solve(f @ f.T + lam * np.eye(n - 1), f @ (features[i] - f_mean))
  y_mean = (targets.sum(0)[None, :] - targets) / (n - 1)  # [T, G] mean of the other rows
  return y_mean * (1.0 - weights.sum(1))[:, None] + weights @ targets


def ridge_prior(*, train_features: np.ndarray, train_lfc: np.ndarray, ridge: float):
  """Fits the prior; returns (predict(features [N, F]) -> [N, G], loo [T, G], ridge used).

  `loo[i]` is the prediction for training target i from a fit without it (with one training
  target, the prior is 0: nothing to learn from). `ridge <= 0` picks the penalty from
  `RIDGE_GRID` with the smallest leave-one-out squared error over the training targets.
  """
  n = len(train_features)
  if n < 2:
    zeros = np.zeros_like(train_lfc)
    return (lambda f: np.zeros((len(f), train_lfc.shape[1]), np.float32)), zeros, ridge
  if ridge <= 0:
    errors = {r: float(np.mean((leave_one_out(train_features, train_lfc, ridge=r) - train_lfc)**2))
              for r in RIDGE_GRID}
    ridge = min(errors, key=errors.get)
  w, b = ridge_fit(train_features, train_lfc, ridge=ridge)
  loo = leave_one_out(train_features, train_lfc, ridge=ridge)
  return ((lambda f: (np.asarray(f) @ w + b).astype(np.float32)), loo.astype(np.float32),
          ridge)
