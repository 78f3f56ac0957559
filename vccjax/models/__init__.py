"""Models: Flax modules, closed-form baselines and the registry by which a config picks one.

`set_transformer` maps control cells plus a perturbation to per-cell log fold changes;
`baselines` are the closed-form peers (mean effect, ridge on features, the prior itself);
`effect_prior` is the ridge prior on a target's fold changes from its gene features; `inputs`
holds what every model takes (`ModelInputs`) and how fold changes and knockdowns are applied.
"""

from __future__ import annotations

import dataclasses

import functools

from vccjax.errors import InputError
from vccjax.models.baselines import LinearEffect, MeanEffect, NearestEffect, PriorEffect
from vccjax.models.inputs import ModelInputs, apply_fold, apply_knockdown
from vccjax.models.set_transformer import SetTransformer

MODELS = {
    "set_tx": SetTransformer,
    "mean_effect": MeanEffect,
    "linear": LinearEffect,
    "additive": PriorEffect,
    "nearest": NearestEffect,
    "nearest_k": NearestEffect,
}
NEAREST_K = 3  # neighbours of `nearest_k` (`nearest`: 1)


def reads_memory(model) -> bool:
  """Whether a built model reads the memory of measured effects (ModelInputs.memory_*)."""
  return bool(getattr(model, "memory", False)) or getattr(model, "nearest_prior", 0) > 0


def _fields(cls) -> set[str]:
  return {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}


def check_model_names(names: list[str], *, where: str) -> None:
  """Raises InputError naming every name that is not a model of MODELS."""
  unknown = [n for n in names if n not in MODELS]
  if unknown:
    raise InputError(where, f"unknown model(s) {unknown}", f"choose from {sorted(MODELS)}")


def get_model(name: str, *, n_genes_out: int, **kwargs):
  """Builds the model called `name` (one of MODELS).

  `kwargs` is the config's model section: each model takes the fields it has (the baselines have
  none), so one config serves every model; a field no model has is an error (a typo).
  """
  check_model_names([name], where="config.model.name")
  known = set().union(*(_fields(cls) for cls in MODELS.values()))
  unknown = sorted(set(kwargs) - known)
  if unknown:
    raise ValueError(f"config.model has unknown fields {unknown}; known: {sorted(known)}")
  cls = MODELS[name]
  if name == "nearest_k":
    cls = functools.partial(NearestEffect, neighbours=NEAREST_K)
    return cls(n_genes_out=n_genes_out)
  return cls(n_genes_out=n_genes_out, **{k: v for k, v in kwargs.items() if k in _fields(cls)})
