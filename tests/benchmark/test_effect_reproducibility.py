"""benchmarks/effect_reproducibility.py: a screen with real effects reproduces them; the same
screen with its target labels shuffled among the perturbed cells does not."""

import numpy as np

from conftest import benchmark_script
from vccjax.data import dataset as dataset_lib
from vccjax.data import io
from vccjax.data import synthetic


def test_real_effects_reproduce_and_shuffled_labels_do_not(tmp_path):
  path = tmp_path / "screen.h5ad"
  synthetic.write_synthetic(str(path), n_cells=2400, n_genes=150, n_targets=6, n_batches=2,
                            median_umi=4000, seed=3, workers=1)
  script = benchmark_script("effect_reproducibility")
  split_half, across = script.reproducibility(dataset_lib.load_dataset(str(path), n_hvg=0),
                                              min_half_cells=10, seed=0, group="context")
  assert len(split_half) == 2 and all(len(r) == 6 for r in split_half.values())
  assert np.min([np.median(r, axis=0) for r in split_half.values()]) > 0.3  # all genes and top
  (same, other), = across.values()
  assert np.min(np.median(same, axis=0)) > 0.3 > np.max(np.median(other, axis=0))
  pooled, across = script.reproducibility(dataset_lib.load_dataset(str(path), n_hvg=0),
                                          min_half_cells=10, seed=0)  # by cell type: one group
  assert list(pooled) == ["H1"] and not across

  adata = io.read_h5ad(str(path))
  labels = adata.obs["target_gene"].astype(str).to_numpy()
  perturbed = np.flatnonzero(labels != "non-targeting")
  labels[perturbed] = np.random.default_rng(0).permutation(labels[perturbed])
  adata.obs["target_gene"] = labels
  shuffled = tmp_path / "shuffled.h5ad"
  adata.write_h5ad(shuffled)
  split_half, across = script.reproducibility(dataset_lib.load_dataset(str(shuffled), n_hvg=0),
                                              min_half_cells=10, seed=0, group="context")
  assert np.max(np.abs([np.median(r, axis=0) for r in split_half.values()])) < 0.15
  (same, _), = across.values()
  assert np.max(np.abs(np.median(same, axis=0))) < 0.15
