"""Streamed input genes: the same values as the dense matrix, the same batches, the same training."""

import json
import os
import shutil
import subprocess
import sys

import h5py
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import CONFIG, REPO, shared
from vccjax.data import dataset, sampler, streaming, synthetic
from vccjax.errors import InputError


@pytest.fixture(scope="module")
def dense():
  return dataset.load_dataset(shared("vcc_h1_subset.h5ad"), n_hvg=300, backed=True)


@pytest.fixture(scope="module", params=[True, False], ids=["backed", "in_memory"])
def streamed(request):
  return dataset.load_dataset(shared("vcc_h1_subset.h5ad"), n_hvg=300, backed=request.param,
                              stream=True)


def test_streamed_rows_equal_the_dense_rows_exactly(dense, streamed):
  x = dense.hvg_log1p
  s = streamed.hvg_log1p
  assert isinstance(s, streaming.StreamedExpression) and s.shape == x.shape
  rng = np.random.default_rng(0)
  cells = rng.integers(0, len(x), size=(3, 50))  # unsorted, repeated, any shape
  np.testing.assert_array_equal(s[cells], x[cells])
  mask = dense.labels.is_control
  np.testing.assert_array_equal(s[mask], x[mask])
  np.testing.assert_array_equal(s[~mask], x[~mask])
  np.testing.assert_array_equal(s[7], x[7])
  np.testing.assert_array_equal(s[-1], x[-1])
  np.testing.assert_array_equal(s[10:40:3], x[10:40:3])
  np.testing.assert_array_equal(s[np.array([], np.int64)], x[np.array([], np.int64)])
  np.testing.assert_array_equal(np.asarray(s), x)


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
  # Written in 64-cell appends: the stored chunks of X/data and X/indices interleave in the file.
  path = tmp_path_factory.mktemp("stream") / "screen.h5ad"
  synthetic.write_synthetic(str(path), n_cells=700, n_genes=150, n_targets=5, n_batches=2,
                            median_umi=1500, seed=2, chunk_size=64, workers=1)
  return path


def _restore(path, **storage):
  """Rewrites X/data and X/indices of `path` with h5py `create_dataset` options `storage`."""
  with h5py.File(path, "r+") as f:
    for name in ("data", "indices"):
      values = f["X"][name][:]
      del f["X"][name]
      f["X"].create_dataset(name, data=values, **storage)


@pytest.mark.parametrize("layout", ["writer", "contiguous", "chunks_of_5", "gzip"])
def test_every_storage_layout_reads_the_dense_rows(synthetic_file, tmp_path, layout):
  path = tmp_path / "copy.h5ad"
  shutil.copy(synthetic_file, path)
  storage = {"writer": None, "contiguous": {"chunks": None}, "chunks_of_5": {"chunks": (5,)},
             "gzip": {"compression": "gzip", "chunks": (64,)}}[layout]
  if storage is not None:
    _restore(path, **storage)
  x = dataset.load_dataset(path, n_hvg=60, backed=True).hvg_log1p
  s = dataset.load_dataset(path, n_hvg=60, backed=True, stream=True).hvg_log1p
  cells = np.random.default_rng(1).integers(0, len(x), size=400)
  np.testing.assert_array_equal(s[cells], x[cells])
  np.testing.assert_array_equal(np.asarray(s), x)


def test_the_rows_file_leaves_nothing_behind_and_is_read_in_runs(synthetic_file, tmp_path,
                                                                   monkeypatch):
  x = dataset.load_dataset(synthetic_file, n_hvg=60, backed=True).hvg_log1p
  s = dataset.load_dataset(synthetic_file, n_hvg=60, backed=True, stream=True,
                           stream_dir=str(tmp_path)).hvg_log1p
  assert not os.listdir(tmp_path)  # unlinked at once: gone with the process, even after a crash
  monkeypatch.setattr(streaming, "_IOV_MAX", 3)  # long runs of adjacent cells take several calls
  cells = np.r_[np.arange(100, 140), np.arange(100, 110), [5, 699, 0, 6]]
  np.testing.assert_array_equal(s[cells], x[cells])
  np.testing.assert_array_equal(np.asarray(s), x)


def test_a_full_disk_is_an_input_error(synthetic_file, tmp_path, monkeypatch):
  monkeypatch.setattr(streaming.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(1, 1, 0))
  with pytest.raises(InputError, match="TMPDIR"):
    dataset.load_dataset(synthetic_file, n_hvg=60, backed=True, stream=True,
                         stream_dir=str(tmp_path))


def test_only_the_control_cells_are_kept_in_memory(streamed):
  n_controls = streamed.labels.is_control.sum()
  assert streamed.hvg_log1p.nbytes_cached == n_controls * 300 * 4


def test_bad_indices_are_errors(streamed):
  s = streamed.hvg_log1p
  with pytest.raises(IndexError):
    s[np.array([len(s)])]
  with pytest.raises(IndexError):
    s[np.ones(3, bool)]
  with pytest.raises(IndexError):
    s[0, 1]


def test_a_sampler_over_the_streamed_dataset_gives_the_same_batches(dense, streamed):
  def make(ds):
    return sampler.SetSampler(
        expr=ds.hvg_log1p, target_gene=ds.labels.target_gene, context=ds.context,
        cells=np.arange(len(ds.context)), targets=ds.targets, control_label=ds.control_label,
        set_size=16, batch_size=4, seed=3)
  a, b = make(dense), make(streamed)
  for step in (0, 5):
    x, y = a.sample(step), b.sample(step)
    for field in ("control_expr", "pert_expr", "pert_mask", "target"):
      np.testing.assert_array_equal(getattr(y, field), getattr(x, field), err_msg=field)
  half = b.sample(5, sets=slice(2, 4))
  np.testing.assert_array_equal(half.pert_expr, a.sample(5).pert_expr[2:])


def _final_params(workdir):
  mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
  state = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore())
  return [np.asarray(x) for x in jax.tree.leaves(state["params"])]


@pytest.mark.slow
def test_streamed_training_run_equals_the_in_memory_run(tmp_path):
  data = tmp_path / "tiny.h5ad"
  synthetic.write_synthetic(str(data), n_cells=800, n_genes=120, n_targets=6, n_batches=2,
                            median_umi=2000, seed=1, workers=1)
  args = [f"--config={CONFIG}:tiny", f"--config.data.path={data}", "--config.data.backed=True",
          "--config.train.steps=6", "--config.train.eval_every=6"]
  # Both runs at once: compiling dominates and overlaps on 2 cores.
  procs = {stream: subprocess.Popen(
      [sys.executable, "-m", "vccjax.main", *args, f"--config.data.stream={stream}",
       f"--workdir={tmp_path / str(stream)}"], cwd=REPO, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for stream in (True, False)}
  runs = {}
  for stream, proc in procs.items():
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert ("input genes streamed" in out) == stream
    with open(tmp_path / str(stream) / "results.json") as f:
      runs[stream] = (json.load(f), _final_params(tmp_path / str(stream)))
  (scores_s, params_s), (scores_d, params_d) = runs[True], runs[False]
  for p, q in zip(params_s, params_d):
    np.testing.assert_array_equal(p, q)
  assert scores_s["val"]["overall"] == scores_d["val"]["overall"]
