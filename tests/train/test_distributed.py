"""Multi-host training: two processes (jax.distributed on CPU) train the one-process model.

Each process has two CPU devices and reads only its half of every batch; the single-process run
has four devices, so both runs split the same global batch over four devices in the same order.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import CONFIG, REPO

STEPS = 10
ARGS = [f"--config={CONFIG}:tiny", f"--config.train.steps={STEPS}", "--config.train.eval_every=5",
        "--config.train.log_every=1"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(args, *, devices: int) -> subprocess.Popen:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return subprocess.Popen([sys.executable, "-m", "vccjax.main", *map(str, args)], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_all(procs, timeout=300) -> list[str]:
  """Each process's stdout. On a timeout every unfinished process is stopped and the test fails
  with the last output of each (a process stuck anywhere leaves the others waiting for it)."""
  outs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=timeout)
      assert p.returncode == 0, f"process failed ({p.returncode}):\n{out[-2000:]}\n{err[-4000:]}"
      outs.append(out)
  except subprocess.TimeoutExpired:
    tails = []
    for i, p in enumerate(procs[len(outs):], start=len(outs)):
      p.kill()
      out, err = p.communicate()
      tails.append(f"--- process {i} (stopped):\n{(out or '')[-1500:]}\n{(err or '')[-3000:]}")
    pytest.fail(f"timed out after {timeout} s; {len(outs)} of {len(procs)} processes had "
                f"finished:\n" + "\n".join(tails))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return outs


def _params(workdir) -> dict:
  """Final parameters as NumPy, whatever devices saved them (orbax would restore onto those)."""
  path = os.path.join(workdir, "checkpoints", "latest", str(STEPS), "default")
  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(path).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  state = checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  return dict(_flatten(state["params"]))


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _flatten(v, f"{prefix}/{k}")
  else:
    yield prefix, tree


def _records(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.mark.slow
def test_two_processes_train_the_single_process_model(tmp_path):
  # No data path: the embedded synthetic screen, which process 0 writes and the other reuses.
  args = list(ARGS)
  single, multi = tmp_path / "single", tmp_path / "multi"
  port = _free_port()
  # All three at once: compiling dominates and overlaps on 2 cores.
  procs = [_start(args + [f"--workdir={multi}", f"--coordinator=localhost:{port}",
                          "--num_processes=2", f"--process_id={i}"], devices=2)
           for i in range(2)]
  procs.append(_start(args + [f"--workdir={single}"], devices=4))
  outs = _wait_all(procs)
  assert "val " in outs[0] and "val " not in outs[1], "only process 0 prints the score table"
  assert "writing synthetic" in outs[0] and "writing synthetic" not in outs[1]

  a, b = _params(single), _params(multi)
  assert a.keys() == b.keys()
  for k in a:
    # The cross-process all-reduce adds the four devices' gradients in another order; Adam
    # divides by |g|, so round-off in gradients that are ~0 (attention key biases) moves a
    # weight by a fraction of one step (lr=1e-3). Reading the wrong sets moves weights by ~3e-3.
    np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=5e-5, err_msg=k)
  # Only process 0 wrote the log: each step once, and the same losses and validation scores.
  rec_a, rec_b = _records(single), _records(multi)
  assert [r["step"] for r in rec_b] == [r["step"] for r in rec_a]
  for ra, rb in zip(rec_a, rec_b):
    for key in ("loss", "val/overall"):
      if key in ra:
        np.testing.assert_allclose(rb[key], ra[key], rtol=1e-4, err_msg=f"{key} {ra['step']}")
  for name in ("config.json", "results.json", "training.png"):
    assert (multi / name).exists(), name
  assert len(list(multi.glob("synthetic_*.h5ad"))) == 1
