"""What training sees of a run: few-shot targets train on their given cells only."""

import os
import sys

import numpy as np

from conftest import REPO
from vccjax.experiment import assembly, training_data
from vccjax.train import held_out


def test_few_shot_targets_train_on_their_given_cells_only(tmp_path):
  sys.path.insert(0, os.path.join(REPO, "configs"))
  import set_tx
  from vccjax.data import synthetic
  data = tmp_path / "few.h5ad"
  synthetic.write_synthetic(str(data), n_cells=900, n_genes=80, n_targets=6, n_batches=2,
                            median_umi=2000, seed=2, workers=1)
  c = set_tx.get_config("tiny")
  c.data.path = str(data)
  c.data.few_shot_cells = 5
  exp = assembly.Experiment.from_config(c)
  given = training_data.few_shot_given(exp, c)
  held = exp.split.val + exp.split.test
  assert sorted(set(exp.dataset.labels.target_gene[given])) == sorted(held)
  table = training_data.training_lfc(exp, c)
  for t in held:
    i = exp.dataset.targets.index(t)
    cells = given[exp.dataset.labels.target_gene[given] == t]
    assert len(cells) == 5
    np.testing.assert_allclose(table[i], exp.dataset.cells_lfc(cells))
    assert not np.allclose(table[i], exp.dataset.target_lfc[i])  # not the full-data answer
  ev = held_out.VccEvaluator(exp, held, exclude_cells=given)
  assert sum(ev.n_cells.values()) == sum(len(exp.dataset.cells_of(t)) for t in held) - len(given)
