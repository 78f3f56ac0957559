"""Sweeps: expansion into valid shell commands, SLURM/TPU launchers, a real local sweep, collection."""

import importlib.util
import json
import math
import os
import shlex
import stat
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from conftest import CONFIG, REPO

SWEEP = os.path.join(REPO, "launch", "sweep.py")
TINY = "configs/set_tx.py:tiny"  # relative, as a user types it (the sweep runs from the repo)


def _sweep(*args, check=True, cwd=REPO, env=None):
  proc = subprocess.run([sys.executable, SWEEP, *map(str, args)], cwd=cwd, capture_output=True,
                        text=True, timeout=600, env=dict(os.environ, **(env or {})))
  if check and proc.returncode != 0:
    raise AssertionError(f"sweep failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-3000:]}")
  return proc


def _set_tx():
  spec = importlib.util.spec_from_file_location("set_tx_for_test", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _parse_like_main(argv):
  """The config `python -m vccjax.main` would build from `argv` (its own flag parser)."""
  # The command's config path is relative to the repository, where the sweep ran.
  args = [a.replace("--config=", f"--config={REPO}/", 1) if a.startswith("--config=") else a
          for a in argv[3:] if not a.startswith("--workdir=")]
  full = ["vccjax.main", *args]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                  sys_argv=full)
  values(full)
  return values.config


def _get(config, dotted):
  for part in dotted.split("."):
    config = config[part]
  return config


@pytest.mark.parametrize("name", ["lr", "loss", "size"])
def test_dry_run_commands_are_valid_and_accepted_by_the_config(name, tmp_path):
  points = list(getattr(_set_tx(), f"sweep_{name}")())
  root = tmp_path / "root"
  out = _sweep(f"--config={TINY}", f"--sweep={name}", f"--workdir={root}", "--dry-run",
               "--set", "train.steps=7").stdout
  lines = out.strip().splitlines()
  assert len(lines) == len(points) >= 3
  workdirs = set()
  for line, point in zip(lines, points):
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "vccjax.main"]
    assert f"--config={TINY}" in argv and "--config.train.steps=7" in argv
    workdir = [a for a in argv if a.startswith("--workdir=")]
    assert len(workdir) == 1 and os.path.dirname(workdir[0][len("--workdir="):]) == str(root)
    workdirs.add(workdir[0])
    config = _parse_like_main(argv)
    assert config.train.steps == 7
    for key, value in point.items():
      assert any(a.startswith(f"--config.{key}=") for a in argv), (key, line)
      assert _get(config, key) == value, (key, _get(config, key), value)
  assert len(workdirs) == len(points)
  assert not root.exists(), "--dry-run must not write anything"


def test_values_are_quoted_for_the_shell(tmp_path):
  value = "SYN 1,it's"
  out = _sweep(f"--config={TINY}", "--sweep=lr", f"--workdir={tmp_path / 'a b'}", "--dry-run",
               "--set", f"data.val_targets={value}").stdout
  for line in out.strip().splitlines():
    argv = shlex.split(line)
    assert f"--config.data.val_targets={value}" in argv
    assert _parse_like_main(argv).data.val_targets == value


@pytest.mark.parametrize("args, needle", [
    (["--sweep=nope"], "sweep_nope"),
    (["--sweep=lr", "--set", "optim.lrr=0.1"], "optim.lrr"),
    (["--sweep=lr", "--set", "train.steps=3.5"], "train.steps"),
    (["--sweep=lr", "--set", "optim=3"], "optim"),
])
def test_bad_sweep_or_override_is_a_one_line_error(args, needle, tmp_path):
  proc = _sweep(f"--config={TINY}", f"--workdir={tmp_path}", *args, check=False)
  assert proc.returncode == 1
  assert needle in proc.stderr and "Traceback" not in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_slurm_array_script_runs_the_task_s_command(tmp_path):
  root = tmp_path / "root"
  expected = _sweep(f"--config={TINY}", "--sweep=lr", f"--workdir={root}",
                    "--dry-run").stdout.strip().splitlines()
  _sweep(f"--config={TINY}", "--sweep=lr", f"--workdir={root}", "--mode=slurm", "--nodes=2",
         "--gpus-per-node=4")
  script = (root / "sweep.sbatch").read_text()
  assert "#SBATCH --array=0-2\n" in script
  assert "#SBATCH --nodes=2\n" in script and "#SBATCH --gres=gpu:4\n" in script
  assert subprocess.run(["bash", "-n", str(root / "sweep.sbatch")]).returncode == 0
  # A stand-in `srun` records what the array task would launch.
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake = bin_dir / "srun"
  fake.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {tmp_path}/launched\n')
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
  for task in (1, 2):
    proc = subprocess.run(["bash", str(root / "sweep.sbatch")], env=dict(
        env, SLURM_ARRAY_TASK_ID=str(task)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "launched").read_text().splitlines() == shlex.split(expected[task])
  proc = subprocess.run(["bash", str(root / "sweep.sbatch")],
                        env=dict(env, SLURM_ARRAY_TASK_ID="3"), capture_output=True, text=True)
  assert proc.returncode != 0


def test_tpu_commands_run_on_all_workers_with_multihost(tmp_path):
  out = _sweep(f"--config={TINY}", "--sweep=lr", f"--workdir={tmp_path}", "--mode=tpu",
               "--tpu=pod", "--zone=us-central2-b", "--dry-run").stdout
  lines = out.strip().splitlines()
  assert len(lines) == 3
  for line, lr in zip(lines, ("0.0003", "0.001", "0.003")):
    argv = shlex.split(line)
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod"]
    assert "--worker=all" in argv and "--zone=us-central2-b" in argv
    remote = [a for a in argv if a.startswith("--command=")][0][len("--command="):]
    assert remote.startswith("cd ~/vccjax && python -m vccjax.main ")
    inner = shlex.split(remote.split(" && ", 1)[1])
    assert f"--config.optim.lr={lr}" in inner and "--multihost" in inner


def _fake_run(root, name, val_scores, test=None):
  workdir = root / name
  workdir.mkdir(parents=True)
  (workdir / "config.json").write_text("{}")
  with open(workdir / "metrics.jsonl", "w") as f:
    for step, v in enumerate(val_scores, 1):
      f.write(json.dumps({"step": step * 10, "loss": 1.0}) + "\n")
      f.write(json.dumps({"step": step * 10, "val/overall": v}) + "\n")
  if test is not None:
    (workdir / "results.json").write_text(json.dumps({"val": {}, "test": {"overall": test}}))


def test_collect_takes_the_best_validation_score_and_sorts(tmp_path):
  _fake_run(tmp_path, "a", [1.0, 5.0, 3.0], test=4.0)
  _fake_run(tmp_path, "b", [7.0, 2.0])  # still running: no results.json
  _fake_run(tmp_path, "c", [])  # never evaluated
  _fake_run(tmp_path, "d", [0.5], test=0.25)
  _sweep("--collect", tmp_path)
  rows = json.loads((tmp_path / "sweep_results.json").read_text())
  assert [r["name"] for r in rows] == ["b", "a", "d", "c"]
  assert [r["best_val_overall"] for r in rows] == [7.0, 5.0, 0.5, None]
  assert [r["best_val_step"] for r in rows] == [10, 20, 10, None]
  assert [r["test_overall"] for r in rows] == [None, 4.0, 0.25, None]
  assert [r["status"] for r in rows] == ["started", "done", "done", "started"]


def test_collect_on_a_missing_directory_is_a_one_line_error(tmp_path):
  proc = _sweep("--collect", tmp_path / "nope", check=False)
  assert proc.returncode == 1, proc.stderr
  assert proc.stderr.strip() == (f"error: {tmp_path / 'nope'}: --collect: no such directory "
                                 "(fix: pass the --workdir the sweep ran in)")


@pytest.mark.slow
def test_local_sweep_trains_three_runs_and_collects_them(tmp_path):
  root = tmp_path / "lr"
  proc = _sweep(f"--config={TINY}", "--sweep=lr", f"--workdir={root}", "--parallel=2",
                "--set", "train.steps=6")
  rows = json.loads((root / "sweep_results.json").read_text())
  assert len(rows) == 3 and "best val" in proc.stdout
  for row in rows:
    assert math.isfinite(row["best_val_overall"]) and row["best_val_step"] == 6
    assert row["status"] == "done" and math.isfinite(row["test_overall"])
    workdir = root / row["name"]
    assert (workdir / "log.txt").exists()
    # The override reached the run: its saved config has the swept value.
    config = json.loads((workdir / "config.json").read_text())
    assert config["optim"]["lr"] == float(row["overrides"]["optim.lr"])
    assert config["train"]["steps"] == 6
  assert sorted(float(r["overrides"]["optim.lr"]) for r in rows) == [3e-4, 1e-3, 3e-3]
  scores = [r["best_val_overall"] for r in rows]
  assert scores == sorted(scores, reverse=True)
  _sweep("--collect", root)
  assert json.loads((root / "sweep_results.json").read_text()) == rows


def test_failed_local_run_exits_1_naming_it(tmp_path):
  config = tmp_path / "broken.py"
  config.write_text(
      "import importlib.util\n"
      f"_spec = importlib.util.spec_from_file_location('set_tx', {CONFIG!r})\n"
      "_set_tx = importlib.util.module_from_spec(_spec)\n"
      "_spec.loader.exec_module(_set_tx)\n"
      "get_config = _set_tx.get_config\n"
      "def sweep_broken():\n"
      "  yield {'data.path': '/nonexistent/screen.h5ad'}\n")
  proc = _sweep(f"--config={config}:tiny", "--sweep=broken", f"--workdir={tmp_path / 'r'}",
                check=False)
  assert proc.returncode == 1
  assert "1 of 1 runs failed" in proc.stderr and "00_path=" in proc.stderr
  assert "Traceback" not in proc.stderr
  log = (tmp_path / "r" / "00_path=-nonexistent-screen.h5ad" / "log.txt").read_text()
  assert "/nonexistent/screen.h5ad" in log
