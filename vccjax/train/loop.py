"""`train_and_evaluate(config, workdir)`: the training loop with periodic evaluation and checkpoints.

A run started again with the same command resumes from its last checkpoint and reaches the same
parameters as an uninterrupted run: batches are a pure function of (seed, step) and the step's
PRNG key is `fold_in(key, step)`.
"""

from __future__ import annotations

import contextlib
import os

import jax
import numpy as np

from vccjax import logbook
from vccjax.data import synthetic_source
from vccjax.errors import InputError
from vccjax.experiment import assembly
from vccjax.experiment import training_data
from vccjax.models import baselines
from vccjax.train import checkpoint as checkpoint_lib
from vccjax.train import distributed
from vccjax.train import held_out
from vccjax.train import plots
from vccjax.train import sharding
from vccjax.train import steps
from vccjax.train import workdir as workdir_lib


# Models fitted without gradient steps.
CLOSED_FORM = ("mean_effect", "linear", "additive", "nearest", "nearest_k")


class NonFiniteLossError(RuntimeError):
  pass


def make_optimizer(config):
  return steps.make_optimizer(lr=config.optim.lr, steps=config.train.steps,
                              warmup_steps=config.optim.warmup_steps,
                              weight_decay=config.optim.weight_decay,
                              clip_norm=config.optim.clip_norm)


def abstract_state(exp, config, enc) -> steps.TrainState:
  """Shapes and dtypes of the TrainState (e.g. a restore template), without computing it."""
  sampler = training_data.make_sampler(exp, config)
  rows = training_data.sampler_rows(exp, sampler)
  example = to_train_batch(exp, enc, rows, sampler.sample(0)).inputs
  return jax.eval_shape(lambda k: steps.init_state(
      model=exp.model, optimizer=make_optimizer(config), example_inputs=example, key=k),
      jax.random.key(0))


def to_train_batch(exp, enc, target_rows, set_batch, lfc=None) -> steps.TrainBatch:
  """SetBatch (targets as rows of `enc`) -> TrainBatch of NumPy arrays.

  lfc: [targets, genes] pseudobulk targets (`training_data.training_lfc`; default: every
    target's own).
  """
  rows = target_rows[set_batch.target]
  control_mask = np.ones(set_batch.control_expr.shape[:2], bool)
  inputs = assembly.model_inputs(set_batch.control_expr, control_mask, enc, rows)
  return steps.TrainBatch(inputs=inputs, pert_expr=set_batch.pert_expr,
                          pert_mask=set_batch.pert_mask,
                          lfc=(exp.dataset.target_lfc if lfc is None else lfc)[rows])


def closed_form_params(exp, enc) -> dict:
  """Parameters of the closed-form baselines, fitted on the training targets only."""
  ds = exp.dataset
  rows = np.array([ds.targets.index(t) for t in exp.split.train])
  if exp.config.model.name == "mean_effect":
    return baselines.fit_mean_effect(effects=ds.target_lfc[rows])
  if exp.config.model.name == "additive":
    return {"params": {}}
  if exp.config.model.name in ("nearest", "nearest_k"):
    if exp.memory.go is None:
      raise InputError("config.features.go_path", f"{exp.config.model.name} needs GO annotations",
                       "set --config.features.go_path=go_bp_annotations.tsv.gz")
    return _median_knockdown(exp, enc, rows)
  pooled = assembly.pooled_features(enc)[rows]
  return baselines.fit_linear_effect(features=pooled, effects=ds.target_lfc[rows],
                                     ridge=exp.ridge)


def _median_knockdown(exp, enc, rows) -> dict:
  """The nearest peers' params: the median knockdown of the measured training target genes."""
  columns = np.array([enc.target_out_pos[i, 0] if enc.pert_gene_mask[i].sum() == 1 else -1
                      for i in rows])
  return baselines.fit_nearest_effect(effects=exp.dataset.target_lfc[rows], target_columns=columns)


def _start_at_prior(exp, enc, state, mesh) -> steps.TrainState:
  """`model.start_at_prior`: the knockdown starts at the training targets' median, as the
  nearest peers' does, so the untrained model is the priors plus the peers' knockdown."""
  if "knockdown_log_fold" not in state.params["params"]:
    return state
  rows = np.array([exp.dataset.targets.index(t) for t in exp.split.train])
  value = _median_knockdown(exp, enc, rows)["params"]["knockdown_log_fold"]
  params = dict(state.params["params"])
  params["knockdown_log_fold"] = jax.device_put(value, sharding.replicated(mesh))
  return state.replace(params={**state.params, "params": params})


def member_seed(seed: int, member: int) -> int:
  """The seed of ensemble member `member`: member 0 keeps the run's own (a one-member ensemble is
  the plain run), the others derive theirs from (seed, member)."""
  if member == 0:
    return seed
  return int(np.random.SeedSequence([seed, member]).generate_state(1)[0] >> 1)


def member_dir(workdir: str, member: int) -> str:
  """Where ensemble member `member` keeps its checkpoints, metrics and plot (member 0: the
  workdir itself, as a plain run)."""
  return workdir if member == 0 else os.path.join(workdir, "members", str(member))


def stack_members(params: list):
  """One member's parameters as they are; several stacked on a leading member axis."""
  if len(params) == 1:
    return params[0]
  return jax.tree.map(lambda *leaves: np.stack(leaves), *params)


def train_and_evaluate(config, workdir: str, *, fresh: bool = False) -> dict:
  """Trains, evaluates on the validation (then test) targets and returns the final scores.

  A workdir holds one run (`vccjax.train.workdir`): the run locks it, and a workdir that already
  holds a run is resumed (only with compatible settings) unless `fresh` clears it first.
  """
  workdir = workdir_lib.prepare(workdir)
  is_main = jax.process_index() == 0
  # Process 0 holds the lock and writes; every process checks the resume (the same answer).
  with workdir_lib.Lock(workdir) if is_main else contextlib.nullcontext():
    if fresh:
      if is_main:
        workdir_lib.start_over(workdir)
      distributed.barrier("fresh workdir")
    resolved = synthetic_source.resolve(config, workdir)
    changes = workdir_lib.config_changes(workdir, resolved.to_dict())
    if is_main:
      synthetic_source.materialise(config, workdir)
    distributed.barrier("synthetic data")
    return _run(resolved, workdir, changes, is_main=is_main)


def _run(config, workdir: str, changes: dict | None, *, is_main: bool) -> dict:
  log = print if is_main else (lambda *a, **k: None)
  exp = assembly.Experiment.from_config(config, verbose=is_main)
  ds = exp.dataset
  log(f"[split] {len(exp.split.train)} train / {len(exp.split.val)} val / "
      f"{len(exp.split.test)} test targets; val={exp.split.val} test={exp.split.test}; "
      f"ridge prior penalty {exp.ridge:g}")
  missing = exp.features.featureless(ds.targets)
  if missing:
    log(f"[features] {len(missing)} targets have no features from {exp.features.sources} and are "
        f"encoded as 'no information': {missing[:10]}")
  enc = exp.encode(ds.targets, allow_missing=True)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.data.batch_size, mesh)
  predict_fn = steps.make_predict_step(exp.model)
  # The validation targets choose a trained model's checkpoint; a closed-form model needs them
  # only for a final validation score (`eval.final_val`; the benchmark reads test scores only).
  final_val = config.eval.get("final_val", True)
  wanted = {"test"} | ({"val"} if final_val or config.model.name not in CLOSED_FORM else set())
  evaluators = {name: held_out.VccEvaluator(
      exp, targets, max_cells_per_target=config.eval.max_cells_per_target,
      max_control_cells=config.eval.max_control_cells, fdr=config.eval.fdr, seed=config.seed,
      exclude_cells=training_data.few_shot_given(exp, config))
      for name, targets in (("val", exp.split.val), ("test", exp.split.test))
      if targets and name in wanted}
  ckpt = checkpoint_lib.Checkpoints(workdir, keep=config.train.keep_checkpoints)
  if is_main:
    workdir_lib.record(workdir, config.to_dict(), changes, step=ckpt.latest_step() or 0)
  if changes:
    log("[resume] changed: " + "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()))
  if config.model.name in CLOSED_FORM:
    params = closed_form_params(exp, enc)
  else:
    params, predict_fn = _train_members(exp, config, workdir, enc, mesh, ckpt, predict_fn,
                                        evaluators.get("val"), log, is_main=is_main,
                                        changes=changes)
  # Every process evaluates (deterministic: the same scores everywhere) on a local copy.
  final = {name: ev(predict_fn=predict_fn, params=sharding.host_local(params),
                    write_dir=(os.path.join(workdir, f"{name}_cells")
                               if config.eval.write_cells and is_main else None))
           for name, ev in evaluators.items() if name != "val" or final_val}
  if is_main:
    _report(final, workdir, log)
  ckpt.close()
  return final


def _train_members(exp, config, workdir, enc, mesh, ckpt, predict_fn, val_eval, log, *, is_main,
                   changes):
  """Trains the `train.ensemble` members (one: the plain run); returns their host-local best
  parameters (`stack_members`) and the predict step that reads them. An ensemble's own
  validation score is logged beside its members' (`ensemble_val/overall` in member 0's metrics
  log, the workdir's)."""
  n = config.train.get("ensemble", 1)
  members = []
  for m in range(n):
    if n > 1:
      log(f"[ensemble] member {m + 1} of {n} (seed {member_seed(config.seed, m)})")
      if is_main:
        os.makedirs(member_dir(workdir, m), exist_ok=True)
    member_ckpt = ckpt if m == 0 else checkpoint_lib.Checkpoints(
        member_dir(workdir, m), keep=config.train.keep_checkpoints)
    member_config = config.copy_and_resolve_references()
    member_config.seed = member_seed(config.seed, m)
    state = _train(exp, member_config, member_dir(workdir, m), enc, mesh, member_ckpt,
                   predict_fn, val_eval, log, is_main=is_main, changes=changes)
    restored = member_ckpt.restore_best(state) if val_eval is not None else None
    members.append(sharding.host_local((state if restored is None else restored).params))
    if m:
      member_ckpt.close()
  if n == 1:
    return members[0], predict_fn
  params, predict_fn = stack_members(members), steps.make_predict_step(exp.model, ensemble=n)
  if val_eval is not None:
    scores = val_eval(predict_fn=predict_fn, params=params)
    log(f"[ensemble] validation overall {scores['overall']:.2f} (DES {scores['des']:.3f} "
        f"PDS {scores['pds']:.3f} MAE {scores['mae']:.4f})")
    if is_main:
      logbook.MetricsLog(workdir, resume_step=config.train.steps).write(
          config.train.steps, **{"ensemble_val/overall": scores["overall"]})
  return params, predict_fn


def _train(exp, config, workdir, enc, mesh, ckpt, predict_fn, val_eval, log, *, is_main, changes):
  sampler = training_data.make_sampler(exp, config)
  target_rows = training_data.sampler_rows(exp, sampler)
  lfc = training_data.training_lfc(exp, config)
  # Every process draws the same global plan and reads only the sets its devices hold.
  own_sets = sharding.process_sets(config.data.batch_size, mesh)
  optimizer = make_optimizer(config)
  init_key, key = jax.random.split(jax.random.key(config.seed))
  # The same example on every process, so all compile the same init program.
  example = to_train_batch(exp, enc, target_rows, sampler.sample(0, sets=slice(len(own_sets))))
  init = jax.jit(lambda k: steps.init_state(model=exp.model, optimizer=optimizer,
                                            example_inputs=example.inputs, key=k),
                 out_shardings=sharding.replicated(mesh))
  state = init(init_key)
  if config.model.get("start_at_prior", False):
    state = _start_at_prior(exp, enc, state, mesh)
  restored = ckpt.restore_latest(state)
  if restored is not None:
    state = restored
    log(f"[resume] from checkpoint at step {int(state.step)}")
  start = int(state.step)
  metrics_log = logbook.MetricsLog(workdir, resume_step=start) if is_main else _NoMetricsLog()
  if changes:
    metrics_log.write(start, config_change=changes)
  train_step = steps.make_train_step(
      model=exp.model, optimizer=optimizer, in_genes=exp.in_genes,
      distribution=config.loss.distribution, distribution_weight=config.loss.distribution_weight,
      pseudobulk_weight=config.loss.pseudobulk_weight,
      state_sharding=sharding.replicated(mesh), batch_sharding=sharding.data_sharded(mesh))
  total = config.train.steps
  progress = logbook.Progress(total_steps=total, first_step=start,
                              cells_per_step=config.data.batch_size * config.data.set_size)
  if start == 0 and val_eval is not None and config.train.get("eval_at_start", False):
    # The untrained model (with `model.start_at_prior`: the priors alone) is a candidate too.
    _evaluate(0, state, val_eval, predict_fn, metrics_log, ckpt, log)
  for step in range(start, total):
    batch = to_train_batch(exp, enc, target_rows, sampler.sample(step, sets=own_sets), lfc=lfc)
    if exp.memory.size:
      hidden = training_data.hide_memory(
          batch.inputs.memory_mask, fraction=config.train.get("memory_hide", 0.0),
          rng=np.random.default_rng([config.seed, step]))
      batch = batch._replace(inputs=batch.inputs._replace(memory_mask=hidden))
    state, metrics = train_step(state, sharding.put_batch(batch, mesh), key)
    done = step + 1
    if done % config.train.log_every == 0 or done == total:
      metrics = jax.device_get(metrics)
      if not np.isfinite(metrics["loss"]):
        raise NonFiniteLossError(
            f"loss is {metrics['loss']} at step {done}: training stopped (fix: lower "
            f"--config.optim.lr or --config.optim.clip_norm; last good checkpoint kept)")
      metrics_log.write(done, **metrics)
      log(progress.line(done, float(metrics["loss"])))
    evaluate_now = val_eval is not None and config.train.eval_every and (
        done % config.train.eval_every == 0 or done == total)
    if evaluate_now:
      _evaluate(done, state, val_eval, predict_fn, metrics_log, ckpt, log)
    elif done % config.train.checkpoint_every == 0 or done == total:
      ckpt.save(done, state)
  if is_main:
    plots.plot_training(logbook.MetricsLog.read(metrics_log.path),
                        os.path.join(workdir, "training.png"))
  return state


def _evaluate(step, state, val_eval, predict_fn, metrics_log, ckpt, log) -> None:
  """Scores `state` on the validation targets, logs it and checkpoints it with its score."""
  scores = val_eval(predict_fn=predict_fn, params=sharding.host_local(state.params))
  metrics_log.write(step, **{f"val/{k}": v for k, v in scores.items() if k != "per_target"})
  log(f"[eval] step {step}: val overall {scores['overall']:.2f} (DES {scores['des']:.3f} "
      f"PDS {scores['pds']:.3f} MAE {scores['mae']:.4f})")
  ckpt.save(step, state, score=scores["overall"])


class _NoMetricsLog:
  """The metrics log of processes other than 0: only process 0 writes to the workdir."""

  def write(self, step: int, **values) -> None:
    del step, values


def _report(final: dict, workdir: str, log) -> None:
  logbook.write_json_atomic(os.path.join(workdir, "results.json"), final)
  header = f"{'split':<6}{'DES':>8}{'PDS':>8}{'MAE':>9}{'DES_s':>8}{'PDS_s':>8}{'MAE_s':>8}" \
           f"{'overall':>9}"
  log(header)
  for name, s in final.items():
    log(f"{name:<6}{s['des']:8.3f}{s['pds']:8.3f}{s['mae']:9.4f}{s['des_scaled']:8.3f}"
        f"{s['pds_scaled']:8.3f}{s['mae_scaled']:8.3f}{s['overall']:9.2f}")
    log(f"{'base':<6}{s['des_baseline']:8.3f}{s['pds_baseline']:8.3f}{s['mae_baseline']:9.4f}"
        f"{'':>24}{0.0:9.2f}")
