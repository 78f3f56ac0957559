"""`train.ensemble`: independently seeded members, each with its best checkpoint, averaged."""

import os

import jax
import numpy as np
import pytest

from conftest import CONFIG, run_module
from vccjax.experiment import assembly
from vccjax.predict import trained_run
from vccjax.train import loop

TINY = [f"--config={CONFIG}:tiny", "--config.train.steps=20", "--config.train.eval_every=10"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  plain, ensemble = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("ensemble")
  run_module("vccjax.main", *TINY, f"--workdir={plain}")
  run_module("vccjax.main", *TINY, "--config.train.ensemble=3", f"--workdir={ensemble}")
  return plain, ensemble


def _leaves(params):
  return [np.asarray(x) for x in jax.tree.leaves(params)]


def test_member_zero_is_the_plain_run_and_the_others_differ(runs):
  plain, ensemble = runs
  _, plain_params, _ = trained_run.load_trained(str(plain))
  _, stacked, _ = trained_run.load_trained(str(ensemble))
  for a, b in zip(_leaves(plain_params), _leaves(stacked)):
    assert b.shape == (3,) + a.shape
    np.testing.assert_array_equal(b[0], a)
  kernels = [b for b in _leaves(stacked) if b.ndim == 3]  # Dense kernels of every member
  assert all(not np.array_equal(k[0], k[1]) and not np.array_equal(k[1], k[2]) for k in kernels)
  for m in (1, 2):
    member = os.path.join(ensemble, "members", str(m))
    assert os.path.isdir(os.path.join(member, "checkpoints", "best"))
    assert os.path.exists(os.path.join(member, "metrics.jsonl"))


def test_the_prediction_is_the_mean_of_the_members_log_fold_changes(runs):
  _, ensemble = runs
  exp, stacked, predict_fn = trained_run.load_trained(str(ensemble))
  enc = exp.encode(exp.split.test, allow_missing=True)
  rng = np.random.default_rng(0)
  controls = rng.choice(exp.dataset.cells_of(exp.dataset.control_label), size=(2, 16))
  inputs = assembly.model_inputs(exp.dataset.hvg_log1p[controls], np.ones((2, 16), bool), enc,
                                 np.array([0, len(exp.split.test) - 1]))
  members = [jax.tree.map(lambda x, m=m: x[m], stacked) for m in range(3)]
  each = [np.asarray(exp.model.apply(p, inputs, deterministic=True)) for p in members]
  assert not np.allclose(each[0], each[1])
  np.testing.assert_allclose(np.asarray(predict_fn(stacked, inputs)), np.mean(each, axis=0),
                             rtol=1e-5, atol=1e-6)


def test_member_seeds():
  assert loop.member_seed(7, 0) == 7
  seeds = {loop.member_seed(7, m) for m in range(1, 6)} | {loop.member_seed(8, 1)}
  assert len(seeds) == 6 and 7 not in seeds
