"""What training sees of a run: its cells, set sampler and pseudobulk targets.

Few-shot targets (config.data.few_shot_cells) give a few of their cells to training; those cells
form the target's pseudobulk target and are never scored.
"""

from __future__ import annotations

import numpy as np

from vccjax.data import sampler as sampler_lib
from vccjax.data import splits


def few_shot_given(exp, config) -> np.ndarray:
  """The cells of held-out targets given to training (config.data.few_shot_cells per target)."""
  return splits.few_shot_cells(exp.dataset.labels.target_gene, exp.split.val + exp.split.test,
                               n_cells=config.data.few_shot_cells, seed=config.data.split_seed)


def training_lfc(exp, config) -> np.ndarray:
  """[targets, genes] the pseudobulk targets of training: each target's fold changes, except
  that a few-shot target's come from its given cells only (its other cells are held out)."""
  ds = exp.dataset
  table = ds.target_lfc.copy()
  given = few_shot_given(exp, config)
  for target in sorted(set(ds.labels.target_gene[given])):
    table[ds.targets.index(target)] = ds.cells_lfc(given[ds.labels.target_gene[given] == target])
  return table


def make_sampler(exp, config) -> sampler_lib.SetSampler:
  ds, split = exp.dataset, exp.split
  given = few_shot_given(exp, config)
  cells = splits.training_cells(ds.labels.target_gene, split, control_label=ds.control_label,
                                given=given)
  few_shot_targets = sorted(set(ds.labels.target_gene[given])) if len(given) else []
  return sampler_lib.SetSampler(
      expr=ds.hvg_log1p, target_gene=ds.labels.target_gene, context=ds.context, cells=cells,
      targets=split.train + few_shot_targets, control_label=ds.control_label,
      set_size=config.data.set_size, batch_size=config.data.batch_size, seed=config.seed)


def sampler_rows(exp, sampler) -> np.ndarray:
  """Row in `exp.dataset.targets` (and in `exp.encode(exp.dataset.targets)`) of each sampler target."""
  return np.array([exp.dataset.targets.index(t) for t in sampler.targets])


def hide_memory(memory_mask: np.ndarray, *, fraction: float,
                rng: np.random.Generator) -> np.ndarray:
  """Episodic training: [B, M] readable entries with each hidden with probability `fraction`.

  Every step hides a random part of the training perturbations from the memory and predicts
  its sets from the rest, as an unseen target is predicted from the training targets; a set's
  own entry is already unreadable (`effect_memory.read_fields`).
  """
  return memory_mask & (rng.random(memory_mask.shape) >= fraction)
