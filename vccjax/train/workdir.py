"""One run per workdir: an exclusive lock, and a resume only into the same run.

A run holds an OS file lock on `workdir/run.lock` (host and pid written inside) for its whole
life; a second run on the workdir stops at once naming the holder, and a lock left by a killed
process is free (the OS drops it with the process). A run started on a workdir that already holds
a `config.json` is a resume: fields that change the parameters' shapes, the data or the split are
refused with one line listing each change; fields that are safe to change between steps
(`RESUMABLE`) are allowed, and every start and resume is appended to `config_history.jsonl`.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
import socket

from vccjax import logbook
from vccjax.errors import InputError

LOCK = "run.lock"
CONFIG = "config.json"
HISTORY = "config_history.jsonl"
# Fields a resumed run may change: the schedule, logging, evaluation, loss weights, the optimizer's
# step sizes, the prepared-data cache. All others (model, features, data, split, seed, ridge)
# define the run.
RESUMABLE = ("train.", "eval.", "loss.", "optim.lr", "optim.warmup_steps", "optim.weight_decay",
             "optim.clip_norm", "data.cache")
# What a run writes into its workdir (`--fresh` removes these; data files stay).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "results.json", CONFIG, HISTORY, "training.png",
               "val_cells", "test_cells", "members")


def prepare(workdir: str) -> str:
  """Creates `workdir` if needed; its absolute path, or a one-line error if it cannot be used."""
  workdir = os.path.abspath(workdir)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise InputError(workdir, "--workdir is a file, not a directory", "pass a directory path")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise InputError(workdir, f"cannot create --workdir ({e.strerror})",
                     "pass a directory you can write") from None
  return workdir


class Lock:
  """`with Lock(workdir):` holds the workdir's exclusive lock, or raises naming its holder."""

  def __init__(self, workdir: str):
    self.workdir, self.path, self._fd = workdir, os.path.join(workdir, LOCK), None

  def __enter__(self):
    try:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise InputError(self.workdir, f"cannot write in --workdir ({e.strerror})",
                       "pass a directory you can write") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise InputError(self.workdir, f"in use by another run ({holder})",
                       "wait for it to end, or pass another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()} since {_now()}\n".encode(), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc):
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    return False


def config_changes(workdir: str, config: dict) -> dict[str, list] | None:
  """Changed fields {name: [stored, new]} against the workdir's run; None for a new run.

  config: the new run's config as a plain dict (`ConfigDict.to_dict()`).
  Raises InputError (before anything is written) when a field outside `RESUMABLE` changed.
  """
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    stored = _flat(json.load(f))
  new = _flat(json.loads(json.dumps(config, default=float)))
  changes = {k: [stored.get(k), new.get(k)] for k in sorted(stored.keys() | new.keys())
             if stored.get(k) != new.get(k)}
  # A field only one side has came with another vccjax version: recorded, not refused.
  refused = [k for k in changes if not k.startswith(RESUMABLE) and k in stored and k in new]
  if refused:
    listed = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
    raise InputError(workdir, f"holds a run with other settings ({listed})",
                     "resume with the stored values, pass a new --workdir, or --fresh to start "
                     "this one over")
  return changes


def record(workdir: str, config: dict, changes: dict | None, *, step: int) -> None:
  """Writes `config.json` (the config in force) and appends the start or resume to the history."""
  if changes is None:
    entry = {"event": "start", "step": step, "config": config}
  else:
    entry = {"event": "resume", "step": step, "changed": changes}
  with open(os.path.join(workdir, HISTORY), "a") as f:
    f.write(json.dumps({"time": _now(), "host": socket.gethostname(), **entry},
                       default=float) + "\n")
  logbook.write_json_atomic(os.path.join(workdir, CONFIG), config)


def start_over(workdir: str) -> list[str]:
  """Removes an earlier run's outputs (`--fresh`); data files in the workdir stay."""
  removed = []
  for name in RUN_OUTPUTS:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)
    else:
      continue
    removed.append(name)
  return removed


def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _now() -> str:
  return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
