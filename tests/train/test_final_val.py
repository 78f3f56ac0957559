"""`eval.final_val=False` (the benchmark): only test targets are scored at the end, while a trained
model still chooses its checkpoint on the validation targets."""

import json

import pytest

from vccjax import config_file
from vccjax.train import loop


def _config(name, final_val):
  config = config_file.load_config(config_file.DEFAULT_CONFIG, "tiny")
  config.model.name = name
  config.eval.final_val = final_val
  return config


@pytest.mark.parametrize("final_val", [True, False])
def test_closed_form_model_scores_validation_only_when_asked(tmp_path, final_val):
  scores = loop.train_and_evaluate(_config("mean_effect", final_val), str(tmp_path / "w"))
  assert "test" in scores
  assert ("val" in scores) == final_val


def test_trained_model_still_chooses_its_checkpoint_on_validation(tmp_path):
  workdir = tmp_path / "w"
  scores = loop.train_and_evaluate(_config("set_tx", False), str(workdir))
  assert set(scores) == {"test"}
  with open(workdir / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f if line.strip()]
  assert any("val/overall" in row for row in rows)


def test_eval_at_start_makes_the_untrained_model_a_candidate(tmp_path):
  config = _config("set_tx", False)
  config.train.eval_at_start = True
  workdir = tmp_path / "w"
  loop.train_and_evaluate(config, str(workdir))
  with open(workdir / "metrics.jsonl") as f:
    steps = [json.loads(line)["step"] for line in f if "val/overall" in line]
  assert steps[0] == 0 and steps[-1] == config.train.steps


def test_start_at_prior_starts_the_knockdown_at_the_training_median(tmp_path):
  import numpy as np
  import orbax.checkpoint as ocp
  from vccjax.data import synthetic_source
  from vccjax.experiment import assembly

  config = _config("set_tx", False)
  config.model.start_at_prior = True
  config.train.update(eval_at_start=True, steps=0)
  workdir = tmp_path / "w"
  loop.train_and_evaluate(config, str(workdir))
  mngr = ocp.CheckpointManager(str(workdir / "checkpoints" / "best"))
  params = mngr.restore(0, args=ocp.args.StandardRestore())["params"]["params"]
  exp = assembly.Experiment.from_config(synthetic_source.resolve(config, str(workdir)))
  index = {g: i for i, g in enumerate(exp.dataset.gene_names)}
  kept = [np.exp(exp.dataset.target_lfc[exp.dataset.targets.index(t), index[t]])
          for t in exp.split.train if t in index]
  assert kept
  np.testing.assert_allclose(float(params["knockdown_log_fold"]), np.log(np.median(kept)),
                             rtol=1e-5)
