"""The cell-mean baseline ranked in closed form against the summary of its assembled cells."""

import numpy as np
import pytest
import scipy.sparse as sp

from vccjax import metrics


@pytest.mark.parametrize("sparse_controls", [True, False, "blocks of rows"])
def test_closed_form_equals_the_summary_of_the_cells(sparse_controls):
  rng = np.random.default_rng(3)
  n_genes = 40
  controls = np.log1p(rng.poisson(1.5, (60, n_genes))).astype(np.float32)
  profile = controls[:25].mean(0).astype(np.float32)
  profile[:6] = controls[0, :6]  # the profile ties with control values (zeros among them)
  controls[:, 8] = 0.0
  profile[6:9] = 0.0  # zero where the training cells express a gene little (or, gene 8, never)
  profile[9] = controls[:, 9].max() + 1  # above every control value
  counts = {"B": 7, "non-targeting": 99, "A": 3, "C": 1}
  control_log1p = sp.csr_matrix(controls) if sparse_controls else controls
  if sparse_controls == "blocks of rows":  # as `training_profile` gives them: never stacked
    control_log1p = [sp.csr_matrix(controls[:17]), sp.csr_matrix(controls[17:23]), controls[23:]]
  got = metrics.summarize_cell_mean_baseline(profile=profile, control_log1p=control_log1p,
                                             pert_counts=counts)
  cells, targets = metrics.assemble_baseline(profile=profile, control_log1p=controls,
                                             pert_counts=counts)
  want = metrics.summarize(log1p_expr=cells, targets=targets)
  assert got.perturbations == want.perturbations == ["A", "B", "C"]
  np.testing.assert_array_equal(got.pseudobulk, want.pseudobulk)
  np.testing.assert_array_equal(got.p_value, want.p_value)
  assert (want.p_value < 0.05).any() and (want.p_value == 1).any()  # both kinds of gene


def test_bad_counts_are_refused():
  with pytest.raises(ValueError, match="n_cells > 0"):
    metrics.summarize_cell_mean_baseline(profile=np.ones(3, np.float32),
                                         control_log1p=np.ones((2, 3), np.float32),
                                         pert_counts={"A": 0})
