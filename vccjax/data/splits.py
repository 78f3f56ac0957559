"""Splits by target gene, as the VCC holds out genes: no held-out target's cells reach training.

Controls are shared by every split (every prediction is made from control cells). In few-shot
mode, `few_shot_cells` cells of each held-out target are moved to training and out of evaluation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vccjax.data import targets as targets_lib
from vccjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class TargetSplit:
  """Disjoint lists of perturbation targets (doubles `A+B` are targets of their own)."""
  train: list[str]
  val: list[str]
  test: list[str]


def parse_targets(spec) -> list[str]:
  """A comma-separated string (or list) of targets -> list, blanks dropped."""
  if spec is None:
    return []
  items = spec.split(",") if isinstance(spec, str) else list(spec)
  return [s.strip() for s in items if s and s.strip()]


def split_targets(targets: list[str], *, test_targets=None, val_targets=None,
                  test_fraction: float = 0.0, val_fraction: float = 0.0, seed: int = 0,
                  where: str = "split") -> TargetSplit:
  """Splits perturbation targets into train / validation / test.

  Explicit lists win; otherwise a seeded random fraction of the remaining targets is held out.

  Args:
    targets: all perturbed targets of the data (controls excluded).
    test_targets, val_targets: comma-separated strings or lists of targets.
    test_fraction, val_fraction: fractions drawn (seeded) when no explicit list is given.
    seed: seed of the random draw.
    where: name of the config/flag, for error messages.
  """
  known = set(targets)
  test, val = parse_targets(test_targets), parse_targets(val_targets)
  for name, chosen in (("test_targets", test), ("val_targets", val)):
    unknown = [t for t in chosen if t not in known]
    if unknown:
      raise InputError(f"{where}.{name}", f"targets not in the data: {unknown[:5]}",
                       f"choose among {sorted(known)[:8]}...")
  if set(test) & set(val):
    raise InputError(where, f"targets both in test and val: {sorted(set(test) & set(val))}",
                     "make the lists disjoint")
  rng = np.random.default_rng(seed)
  rest = [t for t in sorted(targets) if t not in set(test) | set(val)]
  rng.shuffle(rest)
  if not test and test_fraction > 0:
    n = max(1, int(round(test_fraction * len(targets))))
    test, rest = sorted(rest[:n]), rest[n:]
  if not val and val_fraction > 0:
    n = max(1, int(round(val_fraction * len(targets))))
    val, rest = sorted(rest[:n]), rest[n:]
  rest = drop_leaky_combinations(rest, held_out=test + val)
  if not rest:
    raise InputError(where, "no training targets left after holding out test and val",
                     "hold out fewer targets")
  return TargetSplit(train=sorted(rest), val=sorted(val), test=sorted(test))


def drop_leaky_combinations(train: list[str], *, held_out: list[str]) -> list[str]:
  """Removes combinations (`A+B`) that contain a held-out single gene A from training.

  A double carries its single's effect, so training on it would leak a held-out single. Held-out
  doubles, on the other hand, keep their singles in training (the double-perturbation task).
  """
  held_singles = {t for t in held_out if "+" not in t}
  return [t for t in train
          if "+" not in t or not held_singles & set(targets_lib.genes_of(t))]


def eligible_targets(targets: list[str], kind: str) -> list[str]:
  """The targets a fold kind holds out: "all", "singles", "doubles" (`A+B`) or
  "seen_doubles" (doubles whose singles the targets hold too; `vccjax.benchmark --fold_targets`)."""
  singles = {t for t in targets if "+" not in t}
  if kind == "all":
    return list(targets)
  if kind == "singles":
    return sorted(singles)
  doubles = [t for t in targets if "+" in t]
  if kind == "doubles":
    return doubles
  return [t for t in doubles if set(targets_lib.genes_of(t)) <= singles]


def kfold_targets(targets: list[str], *, folds: int, seed: int = 0) -> list[list[str]]:
  """Partitions `targets` into `folds` disjoint, seeded groups of near-equal size."""
  if not 1 < folds <= len(targets):
    raise InputError("--folds", f"{folds} folds for {len(targets)} targets",
                     f"use 2..{len(targets)} folds")
  order = np.random.default_rng(seed).permutation(sorted(targets))
  return [sorted(order[i::folds].tolist()) for i in range(folds)]


def few_shot_cells(target_gene: np.ndarray, held_out: list[str], *, n_cells: int,
                   seed: int = 0) -> np.ndarray:
  """Indices of `n_cells` cells of each held-out target given to training (seeded)."""
  if n_cells <= 0:
    return np.zeros(0, np.int64)
  rng = np.random.default_rng(seed)
  picked = []
  for target in held_out:
    cells = np.flatnonzero(target_gene == target)
    picked.append(rng.choice(cells, size=min(n_cells, len(cells)), replace=False))
  return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def training_cells(target_gene: np.ndarray, split: TargetSplit, *, control_label: str,
                   given: np.ndarray | None = None) -> np.ndarray:
  """Cells training may see: controls, the train targets' cells, and `given` few-shot cells."""
  allowed = np.isin(target_gene, split.train) | (target_gene == control_label)
  if given is not None and len(given):
    allowed[given] = True
  return np.flatnonzero(allowed)
