"""The only module that imports orbax: periodic checkpoints to resume from, and the best one.

Two managers under `workdir/checkpoints/`: `latest/` keeps the newest few (what a restarted run
resumes from) and `best/` keeps the single checkpoint with the highest validation score. Orbax
writes each checkpoint to a temporary directory and renames it when complete, so a run killed
mid-write resumes from the previous complete checkpoint. Writes are collective across hosts.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """Save/restore a TrainState pytree (params, optimizer state, step)."""

  def __init__(self, workdir: str, *, keep: int = 2):
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    common = dict(enable_async_checkpointing=False, create=True)
    self.latest = ocp.CheckpointManager(
        os.path.join(root, "latest"), options=ocp.CheckpointManagerOptions(max_to_keep=keep,
                                                                           **common))
    self.best = ocp.CheckpointManager(
        os.path.join(root, "best"), options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m["score"], best_mode="max",
            keep_checkpoints_without_metrics=False, **common))

  def save(self, step: int, state, *, score: float | None = None) -> None:
    """Saves `state` as the latest; also as the best when `score` beats the best so far."""
    self.latest.save(step, args=ocp.args.StandardSave(state), force=True)
    if score is not None:
      self.best.save(step, args=ocp.args.StandardSave(state), metrics={"score": float(score)},
                     force=True)

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def restore_latest(self, template):
    """The newest checkpoint restored into the shapes/shardings of `template`, or None."""
    step = self.latest.latest_step()
    if step is None:
      return None
    return self.latest.restore(step, args=ocp.args.StandardRestore(_abstract(template)))

  def restore_best(self, template):
    """The best-scoring checkpoint (falls back to the latest when none was scored)."""
    step = self.best.best_step()
    if step is None:
      return self.restore_latest(template)
    return self.best.restore(step, args=ocp.args.StandardRestore(_abstract(template)))

  def best_step(self) -> int | None:
    return self.best.best_step()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
