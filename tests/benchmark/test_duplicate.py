"""The technical-duplicate bound: halves of the real cells, scored like any prediction."""

import numpy as np

from conftest import shared
from vccjax.benchmark import duplicate
from vccjax.data import io
from vccjax.score import file_scores

CONTROL = "non-targeting"


def test_halves_share_the_controls_and_split_each_target():
  targets = np.array([CONTROL] * 3 + ["A"] * 5 + ["B"] * 2 + [CONTROL])
  a, b = duplicate.split_halves(targets, control_label=CONTROL, seed=0)
  controls = np.flatnonzero(targets == CONTROL)
  assert set(controls) <= set(a) and set(controls) <= set(b)
  for target, size_a in (("A", 2), ("B", 1)):
    in_a = set(a) & set(np.flatnonzero(targets == target))
    in_b = set(b) & set(np.flatnonzero(targets == target))
    assert len(in_a) == size_a and not in_a & in_b
    assert in_a | in_b == set(np.flatnonzero(targets == target))
  again = duplicate.split_halves(targets, control_label=CONTROL, seed=0)
  other = duplicate.split_halves(targets, control_label=CONTROL, seed=1)
  assert all(np.array_equal(x, y) for x, y in zip((a, b), again))
  assert not all(np.array_equal(x, y) for x, y in zip((a, b), other))


def test_a_target_with_one_cell_has_no_duplicate():
  targets = np.array([CONTROL, CONTROL, "A", "A", "B"])
  assert duplicate.split_halves(targets, control_label=CONTROL, seed=0) is None


def _fold_dir(tmp_path):
  """A fold of the VCC subset: real cells, a controls-only baseline, and two 'models': the
  baseline itself and the full real file (which holds half B: better than any honest model)."""
  real = io.read_h5ad(shared("vcc_h1_subset.h5ad"))
  targets = real.obs["target_gene"].astype(str).to_numpy()
  keep = np.flatnonzero(np.isin(targets, [CONTROL, "MED12", "SRC", "STAT1"]))
  real = real[keep].copy()
  real.write_h5ad(tmp_path / "real.h5ad")
  targets = real.obs["target_gene"].astype(str).to_numpy()
  controls = np.flatnonzero(targets == CONTROL)
  rows = np.where(targets == CONTROL, np.arange(len(targets)),
                  controls[np.arange(len(targets)) % len(controls)])
  base = real[rows].copy()
  base.obs["target_gene"] = targets
  base.write_h5ad(tmp_path / "baseline.h5ad")
  base.write_h5ad(tmp_path / "controls.h5ad")
  real.write_h5ad(tmp_path / "leak.h5ad")
  return tmp_path


def test_every_prediction_is_scored_against_half_b(tmp_path):
  fold = _fold_dir(tmp_path)
  scores = duplicate.score_fold(str(fold), ["controls", "leak"], control_label=CONTROL,
                                fdr="global", seed=0)
  half_a = fold / duplicate.DUPLICATE / "half_a.h5ad"
  half_b = fold / duplicate.DUPLICATE / "half_b.h5ad"
  direct = file_scores.score_files(pred_path=str(half_a), real_path=str(half_b),
                                   baseline_path=str(fold / "baseline.h5ad"))
  assert scores[duplicate.DUPLICATE]["overall"] == direct["overall"]
  assert scores["controls"]["overall"] == 0.0  # the baseline itself
  # The full real file contains half B: it beats the duplicate, which shares no cell with it.
  assert scores["leak"]["overall"] > scores[duplicate.DUPLICATE]["overall"] > 0.0
  b = io.read_h5ad(str(half_b)).obs["target_gene"].astype(str).value_counts()
  real = io.read_h5ad(str(fold / "real.h5ad")).obs["target_gene"].astype(str).value_counts()
  assert b[CONTROL] == real[CONTROL] and b["SRC"] == real["SRC"] - real["SRC"] // 2


def test_summary_reports_each_models_share_of_the_bound():
  per_fold = [{"duplicate": {duplicate.DUPLICATE: {k: 40.0 if k == "overall" else 0.5
                                                   for k in duplicate.SCORE_KEYS},
                             "m": {k: 10.0 if k == "overall" else 0.1
                                   for k in duplicate.SCORE_KEYS}}},
              {"duplicate": None}]
  text, summary = duplicate.summary_table(per_fold, ["m"])
  assert summary["m"]["share"] == 0.25 and summary[duplicate.DUPLICATE]["share"] == 1.0
  assert "technical_duplicate" in text
  assert duplicate.summary_table([{"duplicate": None}], ["m"]) == ("", {})
