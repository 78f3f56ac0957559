"""The evaluator's real side is reused by the next model on the same held-out cells, and only
then: the scores equal those of an evaluator built from scratch."""

import numpy as np

from vccjax import config_file
from vccjax.data import synthetic_source
from vccjax.experiment import assembly
from vccjax.train import held_out
from vccjax.train import loop
from vccjax.train import steps


def _experiment(workdir, name, **data):
  config = config_file.load_config(config_file.DEFAULT_CONFIG, "tiny")
  config.model.name = name
  config.data.update(data)
  config = synthetic_source.materialise(config, str(workdir))
  return assembly.Experiment.from_config(config)


def _score(exp):
  enc = exp.encode(exp.dataset.targets, allow_missing=True)
  ev = held_out.VccEvaluator(exp, exp.split.test)
  return ev, ev(predict_fn=steps.make_predict_step(exp.model),
                params=loop.closed_form_params(exp, enc))


def test_reference_is_reused_for_the_same_cells_and_scores_do_not_change(tmp_path):
  held_out._REFERENCES.clear()
  first, _ = _score(_experiment(tmp_path, "mean_effect"))
  second, reused = _score(_experiment(tmp_path, "linear"))
  assert second.real_summary is first.real_summary
  held_out._REFERENCES.clear()
  fresh, scratch = _score(_experiment(tmp_path, "linear"))
  assert fresh.real_summary is not first.real_summary
  for k in ("overall", "des", "pds", "mae"):
    np.testing.assert_allclose(reused[k], scratch[k])
  other, _ = _score(_experiment(tmp_path, "linear", split_seed=1))  # other held-out targets
  assert other.real_summary is not fresh.real_summary
