"""What the inverse-design recall benchmarks share: training a fold, cosines, recall, the data."""

from __future__ import annotations

import contextlib
import io
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO, "..", "shared", "data")
MISS = np.iinfo(np.int32).max  # the rank of a target that is not among the candidates
sys.path.insert(0, os.path.join(REPO, "configs"))


def train_fold(path: str, test: list[str], *, steps: int, workdir: str,
               sources: str | None = None, val: list[str] | None = None):
  """Trains the bench model without `test` (feature `sources` if given, else the bench ones;
  validation targets `val` if given, else the config's seeded draw); returns (exp, params) of its
  best checkpoint."""
  import set_tx
  from vccjax.predict import trained_run
  from vccjax.train import loop
  config = set_tx.get_config("bench")
  config.data.path, config.data.test_targets = path, ",".join(test)
  config.train.steps = steps
  if sources:
    config.features.sources = sources
  if val:
    config.data.val_targets = ",".join(val)
  with contextlib.redirect_stdout(io.StringIO()):
    loop.train_and_evaluate(config, workdir)
  exp, params, _ = trained_run.load_trained(workdir)
  return exp, params


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[len(a), len(b)] cosine similarity between the rows of a and b."""
  a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
  b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
  return a @ b.T


def recall(ranks, k: int) -> float:
  return float(np.mean(np.asarray(ranks) <= k))
