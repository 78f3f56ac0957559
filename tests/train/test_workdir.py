"""One run per workdir: the lock, resume only into the same run, `--fresh`, unusable workdirs."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import CONFIG, REPO, run_module
from vccjax.errors import InputError
from vccjax.train import workdir

TINY = [f"--config={CONFIG}:tiny", "--config.data.val_fraction=0", "--config.data.test_fraction=0",
        "--config.train.eval_every=0", "--config.train.steps=10"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  path = tmp_path_factory.mktemp("run")
  run_module("vccjax.main", *TINY, f"--workdir={path}")
  return path


def _snapshot(path) -> dict:
  """{relative path: sha256} of every file under `path` but the lock (which names its holder)."""
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      full = os.path.join(root, name)
      if name != workdir.LOCK:
        out[os.path.relpath(full, path)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
  return out


def _assert_one_line_error(proc, *needles):
  assert proc.returncode == 1, proc.stderr[-2000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
  for needle in needles:
    assert needle in lines[0], lines[0]


def test_a_second_run_on_a_busy_workdir_stops_and_changes_nothing(finished_run):
  with workdir.Lock(str(finished_run)):
    before = _snapshot(finished_run)
    proc = run_module("vccjax.main", *TINY, f"--workdir={finished_run}", check=False)
  _assert_one_line_error(proc, "in use by another run", f"pid {os.getpid()}")
  assert _snapshot(finished_run) == before


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from vccjax.train import workdir; "
       "workdir.Lock(sys.argv[1]).__enter__(); print('locked', flush=True); time.sleep(120)",
       str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(InputError, match=f"in use by another run .*pid {holder.pid} since"):
      with workdir.Lock(str(tmp_path)):
        pass
  finally:
    holder.kill()
    holder.wait()
  with workdir.Lock(str(tmp_path)):
    assert f"pid {os.getpid()} " in (tmp_path / workdir.LOCK).read_text()


def test_an_incompatible_resume_is_refused_before_anything_is_written(finished_run):
  before = _snapshot(finished_run)
  proc = run_module("vccjax.main", *TINY, "--config.model.hidden=64", "--config.seed=3",
                    f"--workdir={finished_run}", check=False)
  _assert_one_line_error(proc, "model.hidden: 32 -> 64", "seed: 0 -> 3", "--fresh")
  assert _snapshot(finished_run) == before


def test_an_allowed_resume_is_recorded_and_fresh_starts_over(tmp_path):
  run_module("vccjax.main", *TINY, f"--workdir={tmp_path}")
  proc = run_module("vccjax.main", *TINY, "--config.train.steps=15", "--config.optim.lr=0.002",
                    f"--workdir={tmp_path}")
  assert "[resume] changed: optim.lr 0.001 -> 0.002; train.steps 10 -> 15" in proc.stdout
  change = {"optim.lr": [0.001, 0.002], "train.steps": [10, 15]}
  history = [json.loads(line) for line in open(tmp_path / workdir.HISTORY)]
  assert [h["event"] for h in history] == ["start", "resume"]
  assert history[0]["config"]["optim"]["lr"] == 0.001  # the original, kept
  assert history[1]["step"] == 10 and history[1]["changed"] == change
  metrics = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert {"step": 10, "config_change": change} in metrics
  assert max(m["step"] for m in metrics) == 15
  assert json.load(open(tmp_path / "config.json"))["train"]["steps"] == 15

  run_module("vccjax.main", *TINY, "--fresh", "--config.model.hidden=64",
             "--config.train.steps=5", f"--workdir={tmp_path}")
  history = [json.loads(line) for line in open(tmp_path / workdir.HISTORY)]
  assert [h["event"] for h in history] == ["start"]
  assert history[0]["config"]["model"]["hidden"] == 64
  assert max(json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")) == 5


def test_a_workdir_that_is_a_file_is_a_one_line_error(tmp_path):
  path = tmp_path / "file"
  path.write_text("not a directory")
  proc = run_module("vccjax.main", *TINY, f"--workdir={path}", check=False)
  _assert_one_line_error(proc, str(path), "is a file")


def test_a_workdir_the_os_refuses_is_a_one_line_error(tmp_path, monkeypatch):
  # Root writes through permission bits, so the OS's refusal is simulated where it would come.
  def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")
  monkeypatch.setattr(os, "makedirs", refuse)
  with pytest.raises(InputError, match="cannot create --workdir \\(Permission denied\\)"):
    workdir.prepare(str(tmp_path / "new"))
  monkeypatch.undo()
  monkeypatch.setattr(os, "open", refuse)
  with pytest.raises(InputError, match="cannot write in --workdir \\(Permission denied\\)"):
    workdir.Lock(str(tmp_path)).__enter__()


@pytest.mark.parametrize("args, needle", [
    ([f"--config={REPO}/configs/nope.py"], "config file not found"),
    ([*TINY, "--config.train.stepz=3"], "did you mean --config.train.steps?"),
    ([*TINY, "--config.train.steps=3.5"], "--config.train.steps=3.5"),
])
def test_bad_config_is_a_one_line_error_and_makes_no_workdir(tmp_path, args, needle):
  proc = run_module("vccjax.main", *args, f"--workdir={tmp_path / 'run'}", check=False)
  _assert_one_line_error(proc, needle)
  assert not (tmp_path / "run").exists()


def test_an_unknown_model_is_a_one_line_error(tmp_path):
  proc = run_module("vccjax.main", *TINY, "--config.model.name=transformer",
                    f"--workdir={tmp_path}", check=False)
  _assert_one_line_error(proc, "config.model.name: unknown model(s) ['transformer']")
