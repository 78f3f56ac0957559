"""Set sampler: one target per set, batch-matched controls, padding masks, determinism."""

import numpy as np
import pytest

from vccjax.data.sampler import SetSampler


@pytest.fixture
def toy():
  # 3 contexts; target A has 10 cells (contexts 0/1), target B only 3 cells (context 2).
  labels = np.array(["ctrl"] * 30 + ["A"] * 10 + ["B"] * 3)
  context = np.array([0] * 10 + [1] * 10 + [2] * 10 + [0] * 5 + [1] * 5 + [2] * 3)
  expr = np.arange(len(labels), dtype=np.float32)[:, None].repeat(4, 1)  # row id as expression
  return labels, context, expr


def _sampler(toy, **kw):
  labels, context, expr = toy
  args = dict(expr=expr, target_gene=labels, context=context, cells=np.arange(len(labels)),
              targets=["A", "B"], control_label="ctrl", set_size=6, batch_size=8, seed=7)
  args.update(kw)
  return SetSampler(**args)


def test_sets_hold_one_target_and_context_matched_controls(toy):
  labels, context, _ = toy
  batch = _sampler(toy).sample(0)
  for b in range(8):
    pert = batch.pert_expr[b, :, 0].astype(int)
    ctrl = batch.control_expr[b, :, 0].astype(int)
    target = ["A", "B"][batch.target[b]]
    assert set(labels[pert]) == {target}
    assert (labels[ctrl] == "ctrl").all()
    np.testing.assert_array_equal(context[ctrl], context[pert])


def test_small_groups_are_padded_and_masked(toy):
  batch = _sampler(toy).sample(3)
  for b in range(8):
    n_real = batch.pert_mask[b].sum()
    if batch.target[b] == 1:  # B has 3 cells
      assert n_real == 3
      assert len(set(batch.pert_expr[b, :3, 0])) == 3  # the real cells, each once
    else:
      assert n_real == 6
      assert len(set(batch.pert_expr[b, :, 0])) == 6  # drawn without replacement


def test_same_seed_and_step_give_the_same_batch(toy):
  a, b = _sampler(toy).sample(5), _sampler(toy).sample(5)
  np.testing.assert_array_equal(a.pert_expr, b.pert_expr)
  np.testing.assert_array_equal(a.control_expr, b.control_expr)
  c = _sampler(toy).sample(6)
  assert not np.array_equal(a.control_expr, c.control_expr)


def test_only_the_given_cells_are_used(toy):
  labels, _, _ = toy
  allowed = np.concatenate([np.arange(0, 20), np.arange(30, 40)])  # no context-2 controls, no B
  s = _sampler(toy, cells=allowed, targets=["A"])
  batch = s.sample(0)
  used = np.unique(np.concatenate([batch.pert_expr[..., 0], batch.control_expr[..., 0]]))
  assert set(used.astype(int)) <= set(allowed)
  with pytest.raises(ValueError, match="no cells"):
    _sampler(toy, cells=allowed, targets=["A", "B"])


def test_process_blocks_of_the_plan_make_the_whole_batch(toy):
  s = _sampler(toy)
  whole = s.sample(4)
  plan = s.plan(4)
  blocks = [s.materialise(plan, sets=slice(i, i + 2)) for i in range(0, 8, 2)]
  for field in ("control_expr", "pert_expr", "pert_mask", "target"):
    np.testing.assert_array_equal(np.concatenate([getattr(b, field) for b in blocks]),
                                  getattr(whole, field), err_msg=field)
  picked = s.sample(4, sets=np.array([1, 6]))
  np.testing.assert_array_equal(picked.pert_expr, whole.pert_expr[[1, 6]])
  # The plan holds the cells whose expression the batch carries (row id = expression here).
  np.testing.assert_array_equal(whole.control_expr[..., 0], plan.control_cells)
  np.testing.assert_array_equal(whole.pert_expr[..., 0], plan.pert_cells)


def test_plan_is_a_pure_function_of_seed_and_step(toy):
  a, b = _sampler(toy).plan(9), _sampler(toy).plan(9)
  np.testing.assert_array_equal(a.pert_cells, b.pert_cells)
  np.testing.assert_array_equal(a.control_cells, b.control_cells)
  other = _sampler(toy, seed=8).plan(9)
  assert not np.array_equal(a.control_cells, other.control_cells)
