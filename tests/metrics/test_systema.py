"""Systema-style centroid-relative scores against a direct NumPy computation."""

import numpy as np
from scipy import stats

from vccjax.metrics import systema


def test_centroid_scores_match_direct_computation():
  rng = np.random.default_rng(0)
  p, g = 5, 30
  centroid = rng.normal(1.0, 0.2, g)
  real = centroid + rng.normal(0, 0.3, (p, g))
  pred = real + rng.normal(0, 0.3, (p, g))
  p_value = rng.uniform(size=(p, g))
  target = np.array([3, -1, 0, 7, 29])
  out = systema.centroid_scores(real_pseudobulk=real, pred_pseudobulk=pred, centroid=centroid,
                                real_p_value=p_value, target_gene_index=target, top_n=6)
  for i in range(p):
    keep = np.arange(g) != target[i]
    a = (pred[i] - centroid)[keep]
    sims = []
    for j in range(p):
      b = (real[j] - centroid)[keep]
      sims.append(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    rank = sum(s > sims[i] for s in sims)
    np.testing.assert_allclose(out["pds_centroid"][i], 1 - rank / p)
    genes = [k for k in np.argsort(p_value[i]) if k != target[i]][:6]
    r = stats.pearsonr((pred[i] - centroid)[genes], (real[i] - centroid)[genes])[0]
    np.testing.assert_allclose(out["pearson_centred"][i], r, rtol=1e-9)


def test_predicting_the_shared_shift_scores_nothing():
  """The mean of the perturbations (the shift they share) has no centroid-relative signal."""
  rng = np.random.default_rng(1)
  real = 2.0 + rng.normal(0, 0.5, (6, 40))
  centroid = real.mean(0)
  pred = np.broadcast_to(centroid, real.shape)
  out = systema.centroid_scores(real_pseudobulk=real, pred_pseudobulk=pred, centroid=centroid,
                                real_p_value=rng.uniform(size=real.shape),
                                target_gene_index=np.full(6, -1))
  assert not out["pearson_centred"].any()
  # all similarities tie at 0: perturbation i ranks after the i listed before it
  np.testing.assert_allclose(out["pds_centroid"], 1 - np.arange(6) / 6)
  # while the truth itself is found every time
  perfect = systema.centroid_scores(real_pseudobulk=real, pred_pseudobulk=real, centroid=centroid,
                                    real_p_value=rng.uniform(size=real.shape),
                                    target_gene_index=np.full(6, -1))
  np.testing.assert_allclose(perfect["pds_centroid"], 1.0)
  np.testing.assert_allclose(perfect["pearson_centred"], 1.0)
