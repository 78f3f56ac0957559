"""Scoring inverse-design candidates: the model's predicted effect of each one against a signature.

All candidates see the same seeded set of control cells, so their scores differ only through the
perturbation. Candidates go through one jitted function in fixed-size chunks (one compilation per
signature length), vmapped over candidates with the control set unbatched; the [chunk, set, genes]
prediction is reduced inside it to the mean log fold change on the signature's genes, and only a
score and the best-agreeing genes come back.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vccjax import experiment as experiment_lib
from vccjax import prediction
from vccjax.data import features as features_lib
from vccjax.errors import InputError
from vccjax.models import ModelInputs

METRICS = ("cosine", "l1")  # cosine: higher is closer; l1: mean |predicted - wanted|, lower
# Predicted values per call ([chunk, set, genes] float32, 8 MB): small enough to stay in cache,
# measured faster on CPU than bigger calls (32 candidates of the bench model), and bounds memory.
CHUNK_ELEMENTS = 1 << 21
MIN_CHUNK, MAX_CHUNK = 8, 512


class ChunkScores(NamedTuple):
  """Scores of candidates. score: [C]; top_idx, top_pred: [C, k] (index into the signature)."""
  score: np.ndarray
  top_idx: np.ndarray
  top_pred: np.ndarray


def known_genes(exp) -> list[str]:
  """Every gene that one of the run's feature sources knows (the default candidates), sorted."""
  return sorted({g for table in exp.gene_tables for g in table.genes})


def control_set(exp, *, seed: int = 0, set_size: int | None = None) -> np.ndarray:
  """[S] control cells shared by every candidate, drawn (seeded) as for predictions."""
  rng = np.random.default_rng(seed)
  return prediction.draw_controls(exp, rng, set_size or exp.config.data.set_size)


def candidate_features(exp, targets: list[str]) -> tuple[features_lib.PerturbationFeatures,
                                                         list[str]]:
  """Features of every gene of `targets` (computed once), and the targets a source lacks."""
  feats = exp.features_for(sorted({g for t in targets for g in t.split("+")}))
  known = dict(zip(feats.genes, feats.present.any(1)))
  return feats, [t for t in targets if not all(known[g] for g in t.split("+"))]


def chunk_inputs(exp, *, feats, targets: list[str], control_expr: np.ndarray) -> ModelInputs:
  """ModelInputs of `targets` ([C]) sharing one control set ([1, S, n_in], mask [1, S]).

  Encoded by `Experiment.encode` itself (one code path with training and prediction), given only
  the chunk's rows of `feats`: it looks genes up one target at a time, which is quadratic over
  18k candidates but cheap over a chunk.
  """
  index = {g: i for i, g in enumerate(feats.genes)}
  rows = np.array(sorted({index[g] for t in targets for g in t.split("+")}))
  sub = dataclasses.replace(feats, genes=[feats.genes[i] for i in rows],
                            matrix=feats.matrix[rows], present=feats.present[rows])
  enc = exp.encode(targets, feats=sub)
  mask = np.ones((1, control_expr.shape[1]), bool)
  return experiment_lib.model_inputs(control_expr, mask, enc, np.arange(len(targets)))


@functools.lru_cache(maxsize=8)
def make_chunk_scorer(model, *, metric: str, n_top: int):
  """A jitted `(params, inputs, columns [n], wanted [n]) -> ChunkScores`.

  inputs: ModelInputs of C candidates whose control set ([1, S, n_in], mask [1, S]) is shared.
  """
  if metric not in METRICS:
    raise InputError("--metric", f"unknown metric {metric!r}", f"use one of {METRICS}")

  shared = ("control_expr", "control_mask")

  def predict_one(params, inputs):
    """[S, G] log fold changes of one candidate (per-candidate fields unbatched)."""
    x = inputs._replace(**{f: getattr(inputs, f)[None] for f in inputs._fields
                           if f not in shared})
    return model.apply(params, x, deterministic=True)[0]

  def score(params, inputs, columns, wanted):
    # vmap over candidates with the control set unbatched: the work on control cells alone (the
    # cell encoder) runs once per chunk, not once per candidate.
    axes = inputs._replace(**{f: (None if f in shared else 0) for f in inputs._fields})
    log_fold = jax.vmap(predict_one, in_axes=(None, axes))(params, inputs)[..., columns]
    control_mask = inputs.control_mask[0]
    weight = control_mask / jnp.sum(control_mask)
    pred = jnp.einsum("csn,s->cn", log_fold, weight)  # [C, n]
    if metric == "cosine":
      norms = jnp.linalg.norm(pred, axis=1) * jnp.linalg.norm(wanted)
      value = pred @ wanted / jnp.maximum(norms, 1e-12)
    else:
      value = jnp.mean(jnp.abs(pred - wanted), axis=1)
    # Agreement per gene: large when both change a lot in the same direction.
    _, top_idx = jax.lax.top_k(pred * wanted, n_top)
    return ChunkScores(value, top_idx, jnp.take_along_axis(pred, top_idx, axis=1))

  return jax.jit(score)


def chunk_size_for(exp, set_size: int) -> int:
  """Candidates per call: as many as keep [chunk, set, genes] within CHUNK_ELEMENTS."""
  return int(np.clip(CHUNK_ELEMENTS // (set_size * exp.dataset.n_genes), MIN_CHUNK, MAX_CHUNK))


def score_targets(exp, params, *, targets: list[str], feats, controls: np.ndarray,
                  columns: np.ndarray, wanted: np.ndarray, metric: str, n_top: int,
                  chunk_size: int | None = None) -> ChunkScores:
  """Scores of `targets` ([T]); the last chunk is padded so the jitted shapes stay fixed.

  feats: features of the targets' genes (`candidate_features`); controls: [S] control cells;
  columns, wanted: [n] the signature on the model's output genes.
  """
  n = len(targets)
  chunk = min(chunk_size or chunk_size_for(exp, len(controls)), n)
  scorer = make_chunk_scorer(exp.model, metric=metric, n_top=min(n_top, len(columns)))
  expr = exp.dataset.hvg_log1p[controls][None]
  cols, want = jnp.asarray(columns), jnp.asarray(wanted, jnp.float32)
  out = []
  for start in range(0, n, chunk):
    idx = np.minimum(np.arange(start, start + chunk), n - 1)  # pad with the last candidate
    inputs = chunk_inputs(exp, feats=feats, targets=[targets[i] for i in idx],
                          control_expr=expr)
    # Dispatch is asynchronous: the next chunk is encoded while this one computes.
    out.append(scorer(params, inputs, cols, want))
  return ChunkScores(*(np.concatenate([np.asarray(a) for a in parts])[:n] for parts in zip(*out)))
