"""What a run writes beside its checkpoints: `config.json`, `metrics.jsonl`, progress lines."""

from __future__ import annotations

import json
import math
import os
import time

from vccjax import atomic


def write_json_atomic(path: str, obj) -> None:
  """Writes `obj` as indented JSON, keys sorted, NumPy scalars as floats; never half a file."""
  atomic.write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float))


class MetricsLog:
  """Appends one JSON object per line to `workdir/metrics.jsonl`.

  On resume from step k, lines logged after k (by the run that was killed) are dropped first, so
  the file reads as if the run had never stopped.
  """

  def __init__(self, workdir: str, *, resume_step: int = 0):
    self.path = os.path.join(workdir, "metrics.jsonl")
    kept = [r for r in self.read(self.path) if r.get("step", 0) <= resume_step]
    atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

  @staticmethod
  def read(path: str) -> list[dict]:
    if not os.path.exists(path):
      return []
    with open(path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def write(self, step: int, **values) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), **{k: _plain(v) for k, v in values.items()}}) + "\n")


def _plain(v):
  if isinstance(v, dict):
    return {k: _plain(x) for k, x in v.items()}
  try:
    return float(v)
  except (TypeError, ValueError):
    return v


class Progress:
  """A progress line every call: step, loss, steps/s, cells/s, ETA."""

  def __init__(self, *, total_steps: int, first_step: int, cells_per_step: int):
    self.total, self.cells = total_steps, cells_per_step
    self.t0, self.s0 = time.time(), first_step

  def line(self, step: int, loss: float) -> str:
    elapsed = max(time.time() - self.t0, 1e-9)
    rate = (step - self.s0) / elapsed
    eta = (self.total - step) / rate if rate > 0 else math.inf
    return (f"step {step:>6}/{self.total}  loss {loss:.4f}  {rate:6.2f} steps/s  "
            f"{rate * self.cells:9.0f} cells/s  ETA {_duration(eta)}")


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
