r"""Is there a target-specific effect to predict? Split-half and cross-context agreement of effects.

  python benchmarks/effect_reproducibility.py --data=../shared/data/mcfaline23_glioma.h5ad

For each group of cells (a cell type, or with --group=context a batch x cell type as the models
see it) and each target with at least 2 x --min_half_cells cells there, the target's cells are
split at random into two halves and each half's log fold change is computed as the models'
targets are (mean normalised counts against the controls of the cells' contexts, pseudocount
1). Each effect is centred on the mean effect of the group's other targets (Systema-style: the
shift every perturbed cell shares counts for nothing; a half is centred with the other targets'
same half, so noise alone gives r = 0). Printed, per group: the median over targets of the
Pearson correlation between the two halves' centred effects, over all genes and over the --top
genes of largest centred effect in the first half (chosen on one half, so noise alone gives 0
there too); near 0: the target-specific part of an effect is not reproducible at these cell
numbers. Per pair of groups: the same two correlations between the same target's centred
effects in the two groups (what transfer to a new cell type can use; genes chosen in the first
group), beside the median over pairs of different targets (the null).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from vccjax.data import dataset as dataset_lib
from vccjax.errors import cli_exit_on_input_error


def correlations(a: np.ndarray, b: np.ndarray, top: int) -> tuple[float, float]:
  """Pearson r of a and b over all genes, and over the `top` genes of largest |a|."""
  chosen = np.argsort(-np.abs(a))[:top]
  return float(np.corrcoef(a, b)[0, 1]), float(np.corrcoef(a[chosen], b[chosen])[0, 1])


def reproducibility(ds, *, min_half_cells: int, seed: int, group: str = "cell_type",
                    top: int = 50) -> tuple[dict, dict]:
  """({group: [(all-gene r, top-gene r) of the two halves, per target]}, {(group A, group B):
  (the same for one target in both groups, per target; for two different targets, per pair)}),
  effects centred on the mean of the group's other targets."""
  names = np.asarray(ds.context_cell_types if group == "cell_type" else ds.context_names)
  cell_group = names[ds.context]
  rng = np.random.default_rng(seed)
  effects, halves = {}, {}
  for name in dict.fromkeys(names):
    for target in ds.targets:
      cells = np.flatnonzero((ds.labels.target_gene == target) & (cell_group == name))
      if len(cells) < 2 * min_half_cells:
        continue
      cells = rng.permutation(cells)
      effects[name, target] = ds.cells_lfc(cells)
      halves[name, target] = (ds.cells_lfc(cells[:len(cells) // 2]),
                              ds.cells_lfc(cells[len(cells) // 2:]))
  groups = [g for g in dict.fromkeys(names) if sum(k[0] == g for k in effects) >= 2]

  def centred(values: dict, g: str) -> dict:
    """{target: effect minus the mean effect of the group's other targets} (one half, or the
    whole): noise alone leaves the centred effects of two halves or groups uncorrelated."""
    mine = {t: v for (h, t), v in values.items() if h == g}
    total = sum(mine.values())
    return {t: v - (total - v) / (len(mine) - 1) for t, v in mine.items()}

  split_half = {}
  for g in groups:
    first = centred({k: v[0] for k, v in halves.items()}, g)
    second = centred({k: v[1] for k, v in halves.items()}, g)
    split_half[g] = [correlations(first[t], second[t], top) for t in first]
  across = {}
  for a, b in itertools.combinations(groups, 2):
    in_a, in_b = centred(effects, a), centred(effects, b)
    shared = sorted(set(in_a) & set(in_b))
    if shared:
      across[a, b] = ([correlations(in_a[t], in_b[t], top) for t in shared],
                      [correlations(in_a[s], in_b[t], top) for s in shared for t in shared
                       if s != t])
  return split_half, across


def _medians(pairs) -> str:
  r = np.median(np.asarray(pairs), axis=0)
  return f"{r[0]:>8.3f}{r[1]:>8.3f}"


@cli_exit_on_input_error
def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data", required=True)
  p.add_argument("--group", choices=["cell_type", "context"], default="cell_type")
  p.add_argument("--min_half_cells", type=int, default=10)
  p.add_argument("--top", type=int, default=50)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  ds = dataset_lib.load_dataset(args.data, n_hvg=0)
  split_half, across = reproducibility(ds, min_half_cells=args.min_half_cells, seed=args.seed,
                                       group=args.group, top=args.top)
  print(f"{args.data}: effects centred on the group's other targets; Pearson r over "
        f"all {ds.n_genes} genes / the top {args.top}; medians over targets (pairs)")
  print(f"{'group':<24}{'targets':>8}{'split-half r: all, top':>24}")
  for name, r in split_half.items():
    print(f"{name:<24}{len(r):>8}{'':>8}{_medians(r)}")
  if across:
    print(f"\n{'group A':<22}{'group B':<22}{'same target: all, top':>22}"
          f"{'other targets: all, top':>24}")
  for (a, b), (same, other) in across.items():
    print(f"{a:<22}{b:<22}{'':>6}{_medians(same)}{'':>8}{_medians(other)}")


if __name__ == "__main__":
  main()
