"""Shared fixtures: paths to the real data in ../shared/data and a tiny synthetic screen."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO, "..", "shared", "data")
CONFIG = os.path.join(REPO, "configs", "set_tx.py")

# One prepared-data cache for the session (its runs share it), not the user's ~/.cache/vccjax.
os.environ["VCCJAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="vccjax-test-cache-")
atexit.register(shutil.rmtree, os.environ["VCCJAX_CACHE_DIR"], True)


def shared(name: str) -> str:
  path = os.path.join(SHARED_DATA, name)
  if not os.path.exists(path):
    pytest.fail(f"missing shared data file {path} (CI provides ../shared/data)")
  return path


def benchmark_script(name: str):
  """benchmarks/NAME.py imported as a module (its helpers, without running `main`)."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "benchmarks",
                                                                   f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_module(module: str, *args, env=None, timeout=600, check=True):
  """Runs `python -m module args` from the repo root; returns the CompletedProcess."""
  full_env = dict(os.environ, **(env or {}))
  proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=full_env,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-3000:]}")
  return proc
