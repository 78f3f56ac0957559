"""Experiment assembly: target encodings and the closed-form prior (ridge / additive)."""

import sys

import numpy as np
import pytest

from conftest import REPO, shared
from vccjax.experiment import assembly

sys.path.insert(0, f"{REPO}/configs")
import set_tx  # noqa: E402


@pytest.fixture(scope="module")
def norman():
  c = set_tx.get_config("tiny")
  c.data.path = shared("norman19_k562.h5ad")
  c.data.test_targets = "KLF1+MAP2K6,MAPK1+TGFBR2"  # doubles whose singles both trained
  c.data.val_targets = "SGK1"
  c.data.max_genes_per_target = 2
  c.features.sources = "go"
  c.features.go_path = shared("go_bp_annotations.tsv.gz")
  return assembly.Experiment.from_config(c)


def test_held_out_double_prior_is_the_sum_of_its_measured_singles(norman):
  ds = norman.dataset
  enc = norman.encode(["KLF1+MAP2K6"])
  lfc = lambda t: ds.target_lfc[ds.targets.index(t)]
  np.testing.assert_allclose(enc.prior_lfc[0], lfc("KLF1") + lfc("MAP2K6"), rtol=1e-5, atol=1e-6)
  assert enc.pert_gene_mask[0].tolist() == [True, True]


def test_training_single_prior_is_leave_one_out(norman):
  ds = norman.dataset
  enc = norman.encode(["FOXO4"])
  own = ds.target_lfc[ds.targets.index("FOXO4")]
  assert not np.allclose(enc.prior_lfc[0], own, atol=1e-3)
  # ... and held-out singles get the ridge fit of all training targets.
  held = norman.encode(["SGK1"]).prior_lfc[0]
  predict, _ = norman.prior
  pooled = assembly.pooled_features(norman.encode(["SGK1"], with_prior=False))
  np.testing.assert_allclose(held, predict(pooled)[0], rtol=1e-6)


def test_encoding_positions_and_unknown_genes(norman):
  enc = norman.encode(["TMSB4X", "FOXO4"])
  genes = list(norman.dataset.gene_names)
  assert enc.target_out_pos[:, 0].tolist() == [genes.index("TMSB4X"), -1]
  with pytest.raises(Exception, match="no perturbation features"):
    norman.encode(["IER5L"])  # no GO annotation
  assert norman.encode(["IER5L"], allow_missing=True).pert_genes[0].sum() == 0
