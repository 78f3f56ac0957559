"""Model registry: a config picks a model by name."""

from __future__ import annotations

from vccjax.models.baselines import LinearEffect, MeanEffect
from vccjax.models.inputs import ModelInputs, apply_knockdown
from vccjax.models.set_transformer import SetTransformer

MODELS = {
    "set_tx": SetTransformer,
    "cell_mean": MeanEffect,
    "linear": LinearEffect,
}


def get_model(name: str, *, n_genes_out: int, **kwargs):
  """Builds the model called `name` (one of MODELS) with its config kwargs."""
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
  return MODELS[name](n_genes_out=n_genes_out, **kwargs)
