"""The benchmark's figure: written for every combination of panels the tables can have."""

import pytest

from vccjax.benchmark import plots


def _inputs():
  per_fold = [{"scores": {"linear": {"overall": 3.0}, "set_tx": {"overall": 9.0}}},
              {"scores": {"linear": {"overall": 5.0}, "set_tx": {"overall": 7.0}}}]
  summary = {"linear": {"overall": {"mean": 4.0, "ci_low": 1.0, "ci_high": 6.0}},
             "set_tx": {"overall": {"mean": 8.0, "ci_low": 5.0, "ci_high": 11.0}}}
  bound = {n: {"overall": v, "share": v / 30.0}
           for n, v in (("technical_duplicate", 30.0), ("linear", 3.0), ("set_tx", 7.0))}
  paired = {"linear": {"mean_difference": 4.0, "low": -1.0, "high": 9.0, "wins": 3, "ties": 1,
                       "losses": 1}}
  return per_fold, summary, bound, paired


@pytest.mark.parametrize("with_bound,with_paired", [(True, True), (False, True), (True, False),
                                                    (False, False)])
def test_scores_figure_is_written(tmp_path, with_bound, with_paired):
  per_fold, summary, bound, paired = _inputs()
  path = plots.plot_scores(per_fold, ["linear", "set_tx"], summary=summary,
                           bound=bound if with_bound else {},
                           paired=paired if with_paired else {}, paired_model="set_tx",
                           title="t", path=str(tmp_path / "scores.png"))
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
