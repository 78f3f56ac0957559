"""Model registry: a config picks a model by name."""

from __future__ import annotations

import dataclasses

from vccjax.models.baselines import LinearEffect, MeanEffect, PriorEffect
from vccjax.models.inputs import ModelInputs, apply_fold, apply_knockdown
from vccjax.models.set_transformer import SetTransformer

MODELS = {
    "set_tx": SetTransformer,
    "cell_mean": MeanEffect,
    "linear": LinearEffect,
    "additive": PriorEffect,
}


def _fields(cls) -> set[str]:
  return {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}


def get_model(name: str, *, n_genes_out: int, **kwargs):
  """Builds the model called `name` (one of MODELS).

  `kwargs` is the config's model section: each model takes the fields it has (the baselines have
  none), so one config serves every model; a field no model has is an error (a typo).
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
  known = set().union(*(_fields(cls) for cls in MODELS.values()))
  unknown = sorted(set(kwargs) - known)
  if unknown:
    raise ValueError(f"config.model has unknown fields {unknown}; known: {sorted(known)}")
  cls = MODELS[name]
  return cls(n_genes_out=n_genes_out, **{k: v for k, v in kwargs.items() if k in _fields(cls)})
