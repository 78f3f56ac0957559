"""Loading a trained run from its workdir: config, data, features and the best parameters."""

from __future__ import annotations

import json
import os

import ml_collections

from vccjax.errors import InputError
from vccjax.experiment import assembly
from vccjax.train import checkpoint as checkpoint_lib
from vccjax.train import loop
from vccjax.train import steps


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise InputError(workdir, "no config.json: not a vccjax workdir (or training never started)",
                     "pass the --workdir given to `python -m vccjax.main`")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_trained(workdir: str, *, verbose: bool = False):
  """(experiment, params, predict_fn) of the run in `workdir` (best checkpoint if scored; with
  `train.ensemble`, every member's, stacked)."""
  config = load_config(workdir)
  exp = assembly.Experiment.from_config(config, verbose=verbose)
  enc = exp.encode(exp.dataset.targets, allow_missing=True)
  if config.model.name in loop.CLOSED_FORM:
    return exp, loop.closed_form_params(exp, enc), steps.make_predict_step(exp.model)
  template = loop.abstract_state(exp, config, enc)
  members = []
  for m in range(config.train.get("ensemble", 1)):
    where = loop.member_dir(workdir, m)
    ckpt = checkpoint_lib.Checkpoints(where)
    try:
      state = ckpt.restore_best(template)
    finally:
      ckpt.close()
    if state is None:
      raise InputError(where, "no checkpoint found", "train first, or check the workdir")
    members.append(state.params)
  return (exp, loop.stack_members(members),
          steps.make_predict_step(exp.model, ensemble=len(members)))
