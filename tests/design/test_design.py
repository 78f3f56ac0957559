"""Inverse design: signatures (csv, h5ad), the specific contrast, recall on a synthetic screen,
ranking plumbing, pairs, CLI output and errors."""

import math

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from conftest import CONFIG, benchmark_script, run_module, shared
from vccjax.design import __main__ as design_command
from vccjax.design import candidates as candidates_lib
from vccjax.design import ranking
from vccjax.design import signature as signature_lib
from vccjax.experiment import assembly
from vccjax.errors import InputError

NORMAN = "norman19_k562.h5ad"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A tiny model on Norman 2019 (GO features, pairs allowed; ~20 steps, no evaluation)."""
  workdir = tmp_path_factory.mktemp("design_run")
  run_module("vccjax.main", f"--config={CONFIG}:tiny", f"--workdir={workdir}",
             f"--config.data.path={shared(NORMAN)}", "--config.data.test_fraction=0",
             "--config.data.val_fraction=0", "--config.data.max_genes_per_target=2",
             "--config.features.sources=go",
             f"--config.features.go_path={shared('go_bp_annotations.tsv.gz')}")
  return workdir


@pytest.fixture(scope="module")
def trained(run):
  from vccjax.predict import trained_run
  exp, params, predict_fn = trained_run.load_trained(str(run))
  return exp, params, predict_fn


def own_prediction(exp, params, predict_fn, target: str) -> dict[str, float]:
  """The model's mean log fold change for `target` on the design control set, computed through
  the training/prediction path (Experiment.encode + predict_fn), not through candidates_lib."""
  controls = candidates_lib.control_set(exp, seed=0)
  enc = exp.encode([target], feats=exp.features_for(target.split("+")))
  inputs = assembly.model_inputs(exp.dataset.hvg_log1p[controls][None],
                                 np.ones((1, len(controls)), bool), enc, np.array([0]))
  lfc = np.asarray(predict_fn(params, inputs))[0].mean(0)
  return dict(zip(map(str, exp.dataset.gene_names), lfc.tolist()))


def some_candidates(exp, n=150, seed=1) -> list[str]:
  genes = candidates_lib.known_genes(exp)
  return np.random.default_rng(seed).choice(genes, n, replace=False).tolist()


@pytest.mark.parametrize("target", ["TMSB4X", "KLF1", "TP53"])  # measured; trained on; neither
@pytest.mark.parametrize("metric", ["specific", "cosine", "l1"])
def test_own_prediction_ranks_its_candidate_first(trained, target, metric):
  exp, params, predict_fn = trained
  signature = own_prediction(exp, params, predict_fn, target)
  candidates = some_candidates(exp) + [target]
  ranked = ranking.rank_candidates(exp, params, signature=signature, candidates=candidates,
                                   metric=metric, log=None)
  assert len(ranked) == len(set(candidates))
  assert ranked[0].target == target and ranked[0].rank == 1
  if metric != "l1":
    assert ranked[0].score == pytest.approx(1.0, abs=1e-5) and ranked[1].score < 0.99999
  else:
    assert ranked[0].score < 1e-5 < ranked[1].score
  assert [c.rank for c in ranked] == list(range(1, len(ranked) + 1))


def test_pairs_are_scored_and_a_pair_signature_finds_its_pair(trained):
  exp, params, predict_fn = trained
  signature = own_prediction(exp, params, predict_fn, "KLF1+TP53")
  candidates = some_candidates(exp, n=20) + ["KLF1", "TP53"]
  ranked = ranking.rank_candidates(exp, params, signature=signature, candidates=candidates,
                                   max_genes=2, pair_pool=len(candidates), log=None)
  pairs = [c for c in ranked if "+" in c.target]
  assert len(pairs) == math.comb(len(set(candidates)), 2)
  assert ranked[0].target == "KLF1+TP53"
  assert ranked[0].score == pytest.approx(1.0, abs=1e-5)


def test_ranking_is_deterministic_and_top_genes_agree(trained):
  exp, params, _ = trained
  ds = exp.dataset
  signature = dict(zip(map(str, ds.gene_names), ds.target_lfc[ds.targets.index("KLF1")].tolist()))
  candidates = some_candidates(exp, n=300)
  first = ranking.rank_candidates(exp, params, signature=signature, candidates=candidates,
                                  metric="cosine", log=None)
  again = ranking.rank_candidates(exp, params, signature=signature, candidates=candidates[::-1],
                                  metric="cosine", log=None)
  assert [(c.target, c.score) for c in first] == [(c.target, c.score) for c in again]
  # Other chunk boundaries (and a padded last chunk) change float rounding only.
  chunked = ranking.rank_candidates(exp, params, signature=signature, candidates=candidates,
                                    metric="cosine", log=None, chunk_size=7)
  by_target = {c.target: c.score for c in chunked}
  np.testing.assert_allclose([c.score for c in first], [by_target[c.target] for c in first],
                             atol=1e-5)
  for c in first[:20]:
    assert all(m.predicted * m.wanted > 0 for m in c.top_genes)
    assert all(m.wanted == pytest.approx(signature[m.gene], rel=1e-6) for m in c.top_genes)


def test_specific_top_genes_agree_relative_to_the_typical_perturbation(trained):
  exp, params, predict_fn = trained
  ds = exp.dataset
  signature = dict(zip(map(str, ds.gene_names), ds.target_lfc[ds.targets.index("KLF1")].tolist()))
  ranked = ranking.rank_candidates(exp, params, signature=signature,
                                   candidates=some_candidates(exp, n=100), log=None)
  matched = signature_lib.match_signature(signature, ds.gene_names)
  controls = candidates_lib.control_set(exp)
  contrast = candidates_lib.reference_contrast(exp, params, controls=controls,
                                               columns=matched.columns)
  want = np.asarray(candidates_lib.apply_contrast(matched.wanted, contrast))
  position = {g: j for j, g in enumerate(matched.genes)}
  for c in ranked[:5]:
    pred = own_prediction(exp, params, predict_fn, c.target)
    seen = np.asarray(candidates_lib.apply_contrast(
        np.array([pred[g] for g in matched.genes], np.float32), contrast))
    assert c.top_genes
    for m in c.top_genes:
      assert m.predicted == pytest.approx(pred[m.gene], abs=1e-5)
      assert seen[position[m.gene]] * want[position[m.gene]] > 0


def test_typical_contrast_matches_numpy():
  rng = np.random.default_rng(0)
  reference = rng.normal(0.3, rng.uniform(0.1, 2.0, 40), (200, 40))
  reference[:, 5] = 0.7  # a gene no prediction varies on: weight floored, stays finite
  x = rng.normal(size=(3, 40))
  contrast = candidates_lib.typical_contrast(reference)
  mean, sd = reference.mean(0), reference.std(0)
  sd[5] = np.median(sd) / candidates_lib.MAX_RELATIVE_WEIGHT
  u = mean / sd / np.linalg.norm(mean / sd)
  y = (x - mean) / sd
  want = y - np.outer(y @ u, u)
  np.testing.assert_allclose(np.asarray(candidates_lib.apply_contrast(x, contrast)), want,
                             rtol=1e-4, atol=1e-4)
  # The typical perturbation itself, and any multiple of it, has nothing specific left.
  for scale in (1.0, 3.0):
    np.testing.assert_allclose(candidates_lib.apply_contrast(scale * mean, contrast), 0,
                               atol=1e-3)


def _design_recall():
  """benchmarks/design_recall_doubles.py as a module (the benchmark's helpers, no training)."""
  return benchmark_script("design_recall_doubles")


def test_recall_pair_rank_is_order_invariant():
  dr = _design_recall()
  ranked = ["KLF1", "TP53+GATA1", "KLF1+TP53", "TP53"]
  assert dr.pair_rank(ranked, "TP53+KLF1") == dr.pair_rank(ranked, "KLF1+TP53") == 3
  assert dr.pair_rank(ranked, "GATA1+TP53") == 2
  assert dr.pair_rank(ranked, "KLF1") == 1  # a single matches only itself, never a pair
  assert dr.pair_rank(ranked, "KLF1+GATA1") == dr.MISS


def test_recall_additive_peer_matches_a_loop():
  """Every single and every unordered pair, scored by the cosine of the summed effects."""
  dr = _design_recall()
  rng = np.random.default_rng(0)
  names = ["D", "B", "A", "C"]
  lfc = rng.normal(size=(4, 30))
  signature = lfc[1] + lfc[3] + 0.1 * rng.normal(size=30)
  ranked = dr.additive_peer(signature, lfc, names)
  cos = lambda x: float(x @ signature / np.linalg.norm(x) / np.linalg.norm(signature))
  want = {n: cos(lfc[i]) for i, n in enumerate(names)}
  for i in range(4):
    for j in range(i + 1, 4):
      want["+".join(sorted((names[i], names[j])))] = cos(lfc[i] + lfc[j])
  assert len(ranked) == 4 + 6 and set(ranked) == set(want)
  assert ranked == sorted(want, key=lambda n: -want[n])
  assert dr.pair_rank(ranked, "C+B") == 1
  tied = dr.additive_peer(np.array([1.0, 0.0]), np.array([[1.0, 0.0], [1.0, 0.0]]), ["Y", "X"])
  assert tied == ["X", "X+Y", "Y"]  # every cosine exactly 1: by name


def test_recall_held_out_doubles_keep_their_singles_in_training():
  dr = _design_recall()
  targets, folds = dr.seen_double_folds(shared(NORMAN), folds=2, seed=0)
  doubles = sorted(t for fold in folds for t in fold)
  assert len(doubles) == 5 and all("+" in t for t in doubles)
  for t in doubles:
    assert set(t.split("+")) <= set(targets)
  for test in folds:
    val = dr.val_keeping_singles(targets, test)
    held = {g for t in test for g in t.split("+")}
    assert val and not (set(val) & (held | set(test)))
    assert len(val) == round(0.2 * len(targets)) and set(val) <= set(targets)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
  """The tiny model on its synthetic CRISPRi screen (200 genes, 2 held-out test targets)."""
  workdir = tmp_path_factory.mktemp("design_synthetic")
  run_module("vccjax.main", f"--config={CONFIG}:tiny", f"--workdir={workdir}",
             "--config.train.steps=150")
  from vccjax.predict import trained_run
  exp, params, _ = trained_run.load_trained(str(workdir))
  return exp, params


def test_synthetic_held_out_targets_are_found_from_their_real_effect(synthetic_run):
  """The known answer: the measured effect of a target the model never saw ranks it near the
  top among every gene (chance of the top 3: 1.5%), through its own gene's knockdown."""
  exp, params = synthetic_run
  ds = exp.dataset
  candidates = candidates_lib.known_genes(exp)
  assert len(candidates) == ds.n_genes and exp.split.test
  for target in exp.split.test:
    signature = dict(zip(map(str, ds.gene_names), ds.target_lfc[ds.targets.index(target)]))
    ranked = ranking.rank_candidates(exp, params, signature=signature, candidates=candidates,
                                     log=None)
    assert [c.rank for c in ranked if c.target == target][0] <= 3, target


def test_unmeasured_signature_genes_are_reported(trained):
  exp, params, _ = trained
  lines = []
  a, b = map(str, exp.dataset.gene_names[:2])
  ranking.rank_candidates(exp, params, signature={a: 2.0, "NOT_A_GENE": 1.0, b: -1.0},
                          candidates=["KLF1", "GATA1"], log=lines.append)
  assert "2 measured" in lines[0] and "NOT_A_GENE" in lines[0]
  with pytest.raises(InputError, match="none of its 1 genes"):
    ranking.rank_candidates(exp, params, signature={"NOT_A_GENE": 1.0}, candidates=["KLF1"],
                            log=None)


def test_csv_log_base(tmp_path):
  path = tmp_path / "sig.csv"
  path.write_text("gene,log_fold_change\nA,1.0\nB,-2\n")
  assert signature_lib.read_signature_csv(str(path), log_base="2") == pytest.approx(
      {"A": math.log(2), "B": -2 * math.log(2)})
  assert signature_lib.read_signature_csv(str(path), log_base="e") == {"A": 1.0, "B": -2.0}


def _norman_subset(path, target="KLF1"):
  """KLF1 cells and controls of Norman 2019 as their own h5ad; returns (counts, is_control)."""
  full = ad.read_h5ad(shared(NORMAN))
  keep = full.obs.target_gene.isin([target, "non-targeting"]).to_numpy()
  sub = full[keep].copy()
  sub.write_h5ad(path)
  x = sub.X.toarray() if sp.issparse(sub.X) else np.asarray(sub.X)
  return x.astype(np.float64), (sub.obs.target_gene == "non-targeting").to_numpy(), sub.var_names


def test_h5ad_signature_matches_numpy(tmp_path):
  counts, is_control, genes = _norman_subset(tmp_path / "cells.h5ad")
  got = signature_lib.signature_from_h5ad(str(tmp_path / "cells.h5ad"),
                                          control_label="non-targeting", pseudocount=1.0)
  totals = counts.sum(1)
  norm = counts / totals[:, None] * np.median(totals)
  want = np.log((norm[~is_control].mean(0) + 1) / (norm[is_control].mean(0) + 1))
  np.testing.assert_allclose([got[g] for g in genes], want, rtol=1e-4, atol=1e-6)


def _ranked_rows(stdout: str) -> list[list[str]]:
  lines = stdout.splitlines()
  start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "candidate"])
  return [line.split() for line in lines[start + 1:] if line.strip()]


def _log2_csv(path, signature: dict[str, float], extra: str = "") -> None:
  path.write_text("gene,log_fold_change\n" + "".join(
      f"{g},{v / math.log(2):.7f}\n" for g, v in signature.items()) + extra)


def test_csv_and_h5ad_give_the_same_signature(tmp_path):
  _norman_subset(tmp_path / "cells.h5ad")
  from_cells = signature_lib.read_signature(
      str(tmp_path / "cells.h5ad"), log_base="2", control_label="non-targeting", pseudocount=1.0)
  _log2_csv(tmp_path / "sig.csv", from_cells)
  from_csv = signature_lib.read_signature(str(tmp_path / "sig.csv"), log_base="2",
                                          control_label="unused", pseudocount=1.0)
  assert from_csv.keys() == from_cells.keys()
  np.testing.assert_allclose(list(from_csv.values()), list(from_cells.values()), atol=1e-6)


def test_cli_csv_and_h5ad_signatures(run, trained, tmp_path):
  _norman_subset(tmp_path / "cells.h5ad")
  sig = signature_lib.signature_from_h5ad(str(tmp_path / "cells.h5ad"),
                                          control_label="non-targeting")
  csv = tmp_path / "sig.csv"
  _log2_csv(csv, sig, extra="NOT_A_GENE,1.5\n")
  proc = run_module("vccjax.design", "--workdir", run, "--signature", csv, "--top", 7,
                    "--out", tmp_path / "ranking.csv")
  rows = _ranked_rows(proc.stdout)
  assert [r[0] for r in rows] == [str(i) for i in range(1, 8)]
  scores = [float(r[2]) for r in rows]
  assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
  assert "not measured" in proc.stdout and "NOT_A_GENE" in proc.stdout
  assert "candidates scored in" in proc.stdout
  n_ranked = len((tmp_path / "ranking.csv").read_text().splitlines()) - 1
  assert n_ranked == len(candidates_lib.known_genes(trained[0]))  # every GO gene by default
  (tmp_path / "cands.txt").write_text("\n".join(["KLF1", "GATA1", "TP53", "MYC", "SPI1"]) + "\n")
  h5 = run_module("vccjax.design", "--workdir", run, "--signature", tmp_path / "cells.h5ad",
                  "--candidates", tmp_path / "cands.txt", "--max-genes", 2, "--top", 20)
  rows = _ranked_rows(h5.stdout)
  assert len(rows) == 15 and sum("+" in r[1] for r in rows) == 10  # 5 singles + 10 pairs


def test_cli_missing_file_exits_1_with_one_line(run, tmp_path):
  proc = run_module("vccjax.design", "--workdir", run, "--signature", tmp_path / "no.csv",
                    check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'no.csv'}: signature file not "
                                              "found (fix: check the path)"]


@pytest.mark.parametrize("case", ["columns", "not_numeric", "duplicate", "no_overlap",
                                  "no_controls", "max_genes", "top", "workdir"])
def test_cli_bad_input_is_one_line(run, tmp_path, case, capsys):
  """Through `design_command.main` in-process (the same wrapper as `python -m`), for speed."""
  sig, args = tmp_path / "sig.csv", []
  sig.write_text("gene,log_fold_change\nKLF1,1.0\n")
  if case == "columns":
    sig.write_text("symbol,lfc\nKLF1,1.0\n")
  elif case == "not_numeric":
    sig.write_text("gene,log_fold_change\nKLF1,high\n")
  elif case == "duplicate":
    sig.write_text("gene,log_fold_change\nKLF1,1\nKLF1,2\n")
  elif case == "no_overlap":
    sig.write_text("gene,log_fold_change\nNOT_A_GENE,1.0\nALSO_NOT,2\n")
  elif case == "no_controls":
    _norman_subset(tmp_path / "cells.h5ad")
    sig, args = tmp_path / "cells.h5ad", ["--control-label", "nope"]
  elif case == "max_genes":
    args = ["--max-genes", "3"]
  elif case == "top":
    args = ["--top", "0"]
  elif case == "workdir":
    run = tmp_path
  with pytest.raises(SystemExit) as exit_info:
    design_command.main(["--workdir", str(run), "--signature", str(sig), *args])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error:"), err
