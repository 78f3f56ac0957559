"""Splits by target gene: explicit or seeded, disjoint, no held-out cells in training."""

import numpy as np
import pytest

from vccjax.data import splits
from vccjax.errors import InputError

TARGETS = [f"G{i}" for i in range(20)] + ["G1+G2"]


def test_explicit_lists_are_respected():
  s = splits.split_targets(TARGETS, test_targets="G3, G4", val_targets=["G5"])
  assert s.test == ["G3", "G4"] and s.val == ["G5"]
  assert not set(s.train) & {"G3", "G4", "G5"}
  assert set(s.train) | set(s.val) | set(s.test) == set(TARGETS)


def test_fractions_are_seeded_and_disjoint():
  a = splits.split_targets(TARGETS, test_fraction=0.2, val_fraction=0.1, seed=3)
  b = splits.split_targets(TARGETS, test_fraction=0.2, val_fraction=0.1, seed=3)
  c = splits.split_targets(TARGETS, test_fraction=0.2, val_fraction=0.1, seed=4)
  assert a == b and a != c
  assert len(a.test) == 4 and len(a.val) == 2
  assert not (set(a.test) & set(a.val)) and not (set(a.train) & set(a.test + a.val))


@pytest.mark.parametrize("kwargs,match", [
    (dict(test_targets="NOPE"), "not in the data"),
    (dict(test_targets="G1", val_targets="G1"), "both in test and val"),
    (dict(test_fraction=0.6, val_fraction=0.5), "no training targets"),
])
def test_bad_splits_name_the_field(kwargs, match):
  with pytest.raises(InputError, match=match):
    splits.split_targets(TARGETS, where="config.data", **kwargs)


def test_training_cells_never_include_held_out_targets_except_few_shot():
  labels = np.array(["non-targeting"] * 5 + ["G1"] * 4 + ["G3"] * 6 + ["G4"] * 3)
  s = splits.TargetSplit(train=["G1"], val=["G3"], test=["G4"])
  cells = splits.training_cells(labels, s, control_label="non-targeting")
  assert set(labels[cells]) == {"non-targeting", "G1"}
  given = splits.few_shot_cells(labels, ["G3", "G4"], n_cells=2, seed=0)
  assert sorted(labels[given].tolist()) == ["G3", "G3", "G4", "G4"]
  cells = splits.training_cells(labels, s, control_label="non-targeting", given=given)
  assert np.sum(labels[cells] == "G3") == 2 and np.sum(labels[cells] == "G4") == 2


def test_doubles_containing_a_held_out_single_leave_training():
  targets = ["A", "B", "C", "A+B", "B+C"]
  s = splits.split_targets(targets, test_targets="A")
  assert s.train == ["B", "B+C", "C"]
  held_double = splits.split_targets(targets, test_targets="A+B")
  assert held_double.train == ["A", "B", "B+C", "C"]  # its singles stay


def test_kfold_targets_partition():
  folds = splits.kfold_targets(TARGETS, folds=4, seed=1)
  assert sorted(sum(folds, [])) == sorted(TARGETS)
  assert max(map(len, folds)) - min(map(len, folds)) <= 1
  assert folds == splits.kfold_targets(TARGETS, folds=4, seed=1)
  with pytest.raises(InputError):
    splits.kfold_targets(TARGETS, folds=1)
