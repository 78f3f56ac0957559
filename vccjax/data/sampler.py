"""Set sampling: each training example is S perturbed cells of one target and S control cells.

Controls are matched to the perturbed cells' contexts (batch x cell type): for every perturbed
cell drawn, a control of the same context is drawn, so the model never learns batch shifts as
perturbation effects. A target with fewer than S cells fills its set and masks the padding.
Batches are a pure function of (seed, step), so a resumed run sees exactly the same data.

A batch is made in two parts: `plan(step)` draws which cells form which set (indices only, cheap)
and `materialise(plan, sets=...)` reads the expression of some of its sets. On several hosts every
process draws the same global plan and reads only its own sets, so together they train on the
batch one process would have drawn.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SetPlan:
  """Which cells form which set in one batch (NumPy indices, no expression).

  Attributes:
    control_cells: [B, S] int64 row of each set's control cells.
    pert_cells: [B, S] int64 row of each set's perturbed cells (padding repeats real cells).
    pert_mask: [B, S] True where `pert_cells` holds a real cell (not padding).
    target: [B] int32 index of each set's target in the sampler's target list.
  """
  control_cells: np.ndarray
  pert_cells: np.ndarray
  pert_mask: np.ndarray
  target: np.ndarray


@dataclasses.dataclass(frozen=True)
class SetBatch:
  """One training batch (NumPy).

  Attributes:
    control_expr: [B, S, n_in] log1p input-gene expression of control cells.
    pert_expr: [B, S, n_in] log1p input-gene expression of observed perturbed cells.
    pert_mask: [B, S] True where `pert_expr` holds a real cell (not padding).
    target: [B] int index of each set's target in the sampler's target list.
  """
  control_expr: np.ndarray
  pert_expr: np.ndarray
  pert_mask: np.ndarray
  target: np.ndarray


class SetSampler:
  """Draws `SetBatch`es from a cell subset of a `PerturbDataset`-like source.

  Args:
    expr: [cells, n_in] float32 input-gene log1p matrix (e.g. `PerturbDataset.hvg_log1p`).
    target_gene: [cells] label per cell.
    context: [cells] int context per cell.
    cells: indices of the cells this sampler may use (the training split).
    targets: targets to draw sets of (each must have cells among `cells`).
    control_label: label of control cells.
    set_size: S, cells per set.
    batch_size: B, sets per batch.
    seed: base seed; batch `step` uses `default_rng([seed, step])`.
  """

  def __init__(self, *, expr, target_gene, context, cells, targets, control_label, set_size,
               batch_size, seed):
    self.expr, self.set_size, self.batch_size, self.seed = expr, set_size, batch_size, seed
    self.targets = list(targets)
    cells = np.asarray(cells)
    labels, ctx = target_gene[cells], context[cells]
    self._cells_of = []
    for t in self.targets:
      members = cells[labels == t]
      if not len(members):
        raise ValueError(f"target {t!r} has no cells in this split")
      self._cells_of.append(members)
    controls = cells[labels == control_label]
    if not len(controls):
      raise ValueError("no control cells in this split")
    self._all_controls = controls
    self._controls_of_context = {c: controls[ctx[labels == control_label] == c]
                                 for c in np.unique(context)}
    self._context = context

  def matched_controls(self, rng: np.random.Generator, cells: np.ndarray) -> np.ndarray:
    """One control per cell in `cells`, drawn from the same context when it has controls."""
    out = np.empty(len(cells), np.int64)
    ctx = self._context[cells]
    for c in np.unique(ctx):
      where = np.flatnonzero(ctx == c)
      pool = self._controls_of_context.get(c)
      if pool is None or not len(pool):
        pool = self._all_controls
      out[where] = rng.choice(pool, size=len(where), replace=True)
    return out

  def draw_set(self, rng: np.random.Generator, target: int):
    """(control cells [S], perturbed cells [S], mask [S]) for one target."""
    members = self._cells_of[target]
    s = self.set_size
    if len(members) >= s:
      pert = rng.choice(members, size=s, replace=False)
      mask = np.ones(s, bool)
    else:
      pert = np.concatenate([rng.permutation(members),
                             rng.choice(members, size=s - len(members), replace=True)])
      mask = np.arange(s) < len(members)
    return self.matched_controls(rng, pert), pert, mask

  def plan(self, step: int) -> SetPlan:
    """The global batch of `step` as cell indices: a pure function of (seed, step)."""
    rng = np.random.default_rng([self.seed, step])
    target = rng.integers(0, len(self.targets), size=self.batch_size)
    ctrl, pert, mask = zip(*(self.draw_set(rng, t) for t in target))
    return SetPlan(control_cells=np.stack(ctrl), pert_cells=np.stack(pert),
                   pert_mask=np.stack(mask), target=target.astype(np.int32))

  def materialise(self, plan: SetPlan, *, sets=slice(None)) -> SetBatch:
    """Expression of the sets `sets` of `plan` (a slice or index array over its B sets)."""
    ctrl, pert = plan.control_cells[sets], plan.pert_cells[sets]
    # One read for both halves: a streamed source then makes one sorted pass over the file.
    expr = self.expr[np.stack([ctrl, pert])]
    return SetBatch(control_expr=expr[0], pert_expr=expr[1], pert_mask=plan.pert_mask[sets],
                    target=plan.target[sets])

  def sample(self, step: int, *, sets=slice(None)) -> SetBatch:
    """Batch `step` (all B sets, or only `sets` of them, e.g. this process's block)."""
    return self.materialise(self.plan(step), sets=sets)
