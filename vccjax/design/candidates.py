"""Scoring inverse-design candidates: the model's predicted effect of each one against a signature.

All candidates see the same seeded set of control cells, so their scores differ only through the
perturbation. Candidates go through one jitted function in fixed-size chunks (one compilation per
signature length), vmapped over candidates with the control set unbatched; the [chunk, set, genes]
prediction is reduced inside it to the mean log fold change on the signature's genes, and only a
score and the best-agreeing genes come back.

The default metric, "specific", compares what is specific to each candidate: every candidate's
prediction shares a large common part (the model starts from a ridge prior near the mean training
effect), which the raw cosine mostly measures. Both sides are taken relative to the model's
typical perturbation (the mean prediction over a seeded reference sample of genes), each gene is
divided by how much predictions vary on it across that sample, and the direction of the typical
effect is projected out (`Contrast`); the score is the cosine of what remains.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vccjax.data import features as features_lib
from vccjax.data import targets as targets_lib
from vccjax.errors import InputError
from vccjax.experiment import assembly
from vccjax.experiment import predicted_cells
from vccjax.models import ModelInputs

# specific, cosine: higher is closer (cosine after / without the `Contrast`); l1: mean
# |predicted - wanted|, lower is closer.
METRICS = ("specific", "cosine", "l1")
REFERENCE_SIZE = 1024  # genes whose predictions define the typical perturbation (seeded sample)
# Genes that the reference predictions do not vary on get at most this weight x the median one.
MAX_RELATIVE_WEIGHT = 1e3
# Predicted values per call ([chunk, set, genes] float32, 8 MB): small enough to stay in cache,
# measured faster on CPU than bigger calls (32 candidates of the bench model), and bounds memory.
CHUNK_ELEMENTS = 1 << 21
MIN_CHUNK, MAX_CHUNK = 8, 512
ENCODE_BLOCK = 1024  # candidates encoded per `Experiment.encode` call


class ChunkScores(NamedTuple):
  """Scores of candidates. score: [C]; top_idx, top_pred: [C, k].

  top_idx indexes the signature's genes, -1 where prediction and signature do not agree (their
  compared values have opposite signs); top_pred is the predicted natural-log fold change.
  """
  score: np.ndarray
  top_idx: np.ndarray
  top_pred: np.ndarray


class Contrast(NamedTuple):
  """What a vector x [..., n] on the signature's genes is compared by: ((x - centre) * weight)
  with its component along `axis` (unit length, or 0: none) removed. All fields: [n] float32."""
  centre: np.ndarray
  weight: np.ndarray
  axis: np.ndarray


def identity_contrast(n: int) -> Contrast:
  """The contrast that leaves vectors as they are (the raw cosine)."""
  return Contrast(np.zeros(n, np.float32), np.ones(n, np.float32), np.zeros(n, np.float32))


def typical_contrast(reference: np.ndarray) -> Contrast:
  """The "specific" metric's contrast from reference predictions [R, n] (see module docstring).

  centre: the mean prediction; weight: 1 / the SD over the reference (floored so that no gene
  weighs more than MAX_RELATIVE_WEIGHT x the median gene); axis: the weighted mean, unit length.
  """
  reference = np.asarray(reference, np.float64)
  centre, sd = reference.mean(0), reference.std(0)
  floor = max(float(np.median(sd)) / MAX_RELATIVE_WEIGHT, 1e-12)
  weight = 1.0 / np.maximum(sd, floor)
  axis = centre * weight
  axis /= max(float(np.linalg.norm(axis)), 1e-12)
  return Contrast(*(a.astype(np.float32) for a in (centre, weight, axis)))


def apply_contrast(x, contrast: Contrast):
  """x [..., n] -> [..., n] as compared under `contrast` (jnp; works on NumPy input)."""
  y = (x - contrast.centre) * contrast.weight
  return y - (y @ contrast.axis)[..., None] * contrast.axis


def known_genes(exp) -> list[str]:
  """Every gene that one of the run's feature sources knows (the default candidates), sorted."""
  return sorted({g for table in exp.gene_tables for g in table.genes})


def control_set(exp, *, seed: int = 0, set_size: int | None = None) -> np.ndarray:
  """[S] control cells shared by every candidate, drawn (seeded) as for predictions."""
  rng = np.random.default_rng(seed)
  return predicted_cells.draw_controls(exp, rng, set_size or exp.config.data.set_size)


def candidate_features(exp, targets: list[str]) -> tuple[features_lib.PerturbationFeatures,
                                                         list[str]]:
  """Features of every gene of `targets` (computed once), and the targets a source lacks."""
  feats = exp.features_for(sorted({g for t in targets for g in targets_lib.genes_of(t)}))
  known = dict(zip(feats.genes, feats.present.any(1)))
  return feats, [t for t in targets if not all(known[g] for g in targets_lib.genes_of(t))]


def chunk_inputs(exp, *, feats, targets: list[str], control_expr: np.ndarray,
                 own_genes: bool = True) -> ModelInputs:
  """ModelInputs of `targets` ([C]) sharing one control set ([1, S, n_in], mask [1, S]).

  own_genes=False encodes every target gene as unmeasured, so the model's explicit change of
  the target genes themselves (the knockdown term) is left out: downstream effects only.

  Encoded by `Experiment.encode` itself (one code path with training and prediction).
  """
  enc = exp.encode(targets, feats=feats)
  if not own_genes:
    enc.target_out_pos[:] = -1
  mask = np.ones((1, control_expr.shape[1]), bool)
  return assembly.model_inputs(control_expr, mask, enc, np.arange(len(targets)))


def _mean_prediction(model):
  """`(params, inputs) -> [C, G]` mean predicted log fold change of C candidates that share one
  control set; vmapped over candidates with the control set unbatched, so the work on control
  cells alone (the cell encoder) runs once per chunk, not once per candidate."""
  shared = ("control_expr", "control_mask")

  def predict_one(params, inputs):
    """[G] mean log fold change of one candidate (per-candidate fields unbatched)."""
    x = inputs._replace(**{f: getattr(inputs, f)[None] for f in inputs._fields
                           if f not in shared})
    log_fold = model.apply(params, x, deterministic=True)[0]  # [S, G]
    control_mask = inputs.control_mask[0]
    return control_mask @ log_fold / jnp.sum(control_mask)

  def predict(params, inputs):
    axes = inputs._replace(**{f: (None if f in shared else 0) for f in inputs._fields})
    return jax.vmap(predict_one, in_axes=(None, axes))(params, inputs)

  return predict


@functools.lru_cache(maxsize=8)
def make_effect_predictor(model):
  """A jitted `(params, inputs) -> [C, G]` mean predicted log fold change per candidate."""
  return jax.jit(_mean_prediction(model))


@functools.lru_cache(maxsize=8)
def make_chunk_scorer(model, *, metric: str, n_top: int):
  """A jitted `(params, inputs, columns [n], wanted [n], contrast) -> ChunkScores`.

  inputs: ModelInputs of C candidates whose control set ([1, S, n_in], mask [1, S]) is shared.
  contrast: a `Contrast` on the n genes (cosine metrics: both sides compared through it).
  """
  if metric not in METRICS:
    raise InputError("--metric", f"unknown metric {metric!r}", f"use one of {METRICS}")
  predict = _mean_prediction(model)

  def score(params, inputs, columns, wanted, contrast):
    pred = predict(params, inputs)[:, columns]  # [C, n]
    if metric == "l1":
      value = jnp.mean(jnp.abs(pred - wanted), axis=1)
      agree = pred * wanted
    else:
      seen, want = apply_contrast(pred, contrast), apply_contrast(wanted, contrast)
      norms = jnp.linalg.norm(seen, axis=1) * jnp.linalg.norm(want)
      value = seen @ want / jnp.maximum(norms, 1e-12)
      agree = seen * want
    # Agreement per gene: large when both change a lot in the same direction.
    top_agree, top_idx = jax.lax.top_k(agree, n_top)
    top_pred = jnp.take_along_axis(pred, top_idx, axis=1)
    return ChunkScores(value, jnp.where(top_agree > 0, top_idx, -1), top_pred)

  return jax.jit(score)


def chunk_size_for(exp, set_size: int) -> int:
  """Candidates per call: as many as keep [chunk, set, genes] within CHUNK_ELEMENTS."""
  return int(np.clip(CHUNK_ELEMENTS // (set_size * exp.dataset.n_genes), MIN_CHUNK, MAX_CHUNK))


def _chunks(exp, *, targets, feats, controls, chunk_size, own_genes):
  """ModelInputs of each fixed-size chunk of `targets`, the last one padded with the last target
  so the jitted shapes stay fixed. Encoded ENCODE_BLOCK targets at a time (one batched prior
  prediction for many small chunks), then cut into chunks."""
  n = len(targets)
  chunk = min(chunk_size or chunk_size_for(exp, len(controls)), n)
  padded = [targets[i] for i in np.minimum(np.arange(-(-n // chunk) * chunk), n - 1)]
  block = max(ENCODE_BLOCK // chunk, 1) * chunk
  expr = exp.dataset.hvg_log1p[controls][None]
  # Every field but the shared control set (the memory fields too) is per candidate.
  per_candidate = [f for f in ModelInputs._fields if f not in ("control_expr", "control_mask")]
  for start in range(0, len(padded), block):
    inputs = chunk_inputs(exp, feats=feats, targets=padded[start:start + block],
                          control_expr=expr, own_genes=own_genes)
    for first in range(0, len(inputs.prior_lfc), chunk):
      yield inputs._replace(**{f: getattr(inputs, f)[first:first + chunk]
                               for f in per_candidate})


def predict_effects(exp, params, *, targets: list[str], feats, controls: np.ndarray,
                    own_genes: bool = True, chunk_size: int | None = None) -> np.ndarray:
  """[T, G] mean predicted natural-log fold change of each target from the `controls` [S]
  (own_genes: as `chunk_inputs`)."""
  predict = make_effect_predictor(exp.model)
  out = [predict(params, inputs) for inputs in _chunks(
      exp, targets=targets, feats=feats, controls=controls, chunk_size=chunk_size,
      own_genes=own_genes)]
  return np.concatenate([np.asarray(o) for o in out])[:len(targets)]


def reference_genes(exp, *, seed: int = 0, size: int = REFERENCE_SIZE) -> list[str]:
  """A seeded sample of `size` genes with features (all if fewer): the typical perturbation's
  reference, independent of the candidates asked about."""
  genes = known_genes(exp)
  if len(genes) <= size:
    return genes
  return sorted(np.random.default_rng(seed).choice(genes, size, replace=False).tolist())


def reference_contrast(exp, params, *, controls: np.ndarray, columns: np.ndarray,
                       seed: int = 0, size: int = REFERENCE_SIZE, own_genes: bool = True,
                       chunk_size: int | None = None) -> Contrast:
  """`typical_contrast` of the predictions of `reference_genes` on the genes `columns` [n]."""
  genes = reference_genes(exp, seed=seed, size=size)
  feats, featureless = candidate_features(exp, genes)
  skipped = set(featureless)
  genes = [g for g in genes if g not in skipped]
  effects = predict_effects(exp, params, targets=genes, feats=feats, controls=controls,
                            own_genes=own_genes, chunk_size=chunk_size)
  return typical_contrast(effects[:, columns])


def score_targets(exp, params, *, targets: list[str], feats, controls: np.ndarray,
                  columns: np.ndarray, wanted: np.ndarray, metric: str, n_top: int,
                  contrast: Contrast | None = None, own_genes: bool = True,
                  chunk_size: int | None = None) -> ChunkScores:
  """Scores of `targets` ([T]); the last chunk is padded so the jitted shapes stay fixed.

  feats: features of the targets' genes (`candidate_features`); controls: [S] control cells;
  columns, wanted: [n] the signature on the model's output genes; contrast: how the cosine
  metrics compare (default: as they are); own_genes: as `chunk_inputs`.
  """
  scorer = make_chunk_scorer(exp.model, metric=metric, n_top=min(n_top, len(columns)))
  cols, want = jnp.asarray(columns), jnp.asarray(wanted, jnp.float32)
  contrast = Contrast(*map(jnp.asarray, contrast or identity_contrast(len(columns))))
  # Dispatch is asynchronous: the next chunk is encoded while this one computes.
  out = [scorer(params, inputs, cols, want, contrast) for inputs in _chunks(
      exp, targets=targets, feats=feats, controls=controls, chunk_size=chunk_size,
      own_genes=own_genes)]
  return ChunkScores(*(np.concatenate([np.asarray(a) for a in parts])[:len(targets)]
                       for parts in zip(*out)))
