"""Atomic writes: named partials, never left behind, removed when stale, files that follow the umask."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from vccjax import atomic
from vccjax.data.writer import H5adWriter


@pytest.fixture
def umask_022():
  old = os.umask(0o022)
  yield
  os.umask(old)


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_a_failed_write_leaves_no_partial_and_the_old_file(tmp_path):
  path = tmp_path / "out.json"
  path.write_text("old")
  with pytest.raises(RuntimeError):
    with atomic.writing(path) as partial:
      open(partial, "w").write("half")
      raise RuntimeError("crash mid-write")
  assert os.listdir(tmp_path) == ["out.json"] and path.read_text() == "old"


def test_stale_partials_of_dead_processes_on_this_host_are_removed(tmp_path):
  host = socket.gethostname()
  stale = tmp_path / f"a.h5ad{atomic.MARK}{host}-{_dead_pid()}"
  live = tmp_path / f"b.h5ad{atomic.MARK}{host}-{os.getpid()}"
  elsewhere = tmp_path / f"c.h5ad{atomic.MARK}another-host-{_dead_pid()}"
  for p in (stale, live, elsewhere):
    p.write_text("partial")
  atomic.write_text(tmp_path / "new.txt", "done")
  assert sorted(os.listdir(tmp_path)) == sorted([live.name, elsewhere.name, "new.txt"])


def test_outputs_follow_the_umask(tmp_path, umask_022):
  atomic.write_text(tmp_path / "a.json", "{}")
  with H5adWriter(tmp_path / "b.h5ad", var=pd.DataFrame(index=["G0", "G1"])) as w:
    w.append(np.ones((2, 2), np.float32), pd.DataFrame(index=["c0", "c1"]))
  for name in ("a.json", "b.h5ad"):
    assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644, name


def test_a_write_killed_mid_file_is_cleaned_by_the_next_write(tmp_path):
  out = tmp_path / "synthetic.h5ad"
  proc = subprocess.Popen([sys.executable, "-m", "vccjax.data.synthetic", "--out", str(out),
                           "--cells", "400000", "--genes", "2000", "--targets", "20",
                           "--chunk-size", "64"],
                          cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while not any(atomic.MARK in n for n in os.listdir(tmp_path)) and time.time() < deadline:
    assert proc.poll() is None, "the writer ended before it could be killed"
    time.sleep(0.05)
  time.sleep(0.5)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  left = [n for n in os.listdir(tmp_path) if atomic.MARK in n]
  assert left and not out.exists()
  atomic.write_text(tmp_path / "next.txt", "a later write into the same directory")
  assert os.listdir(tmp_path) == ["next.txt"]
