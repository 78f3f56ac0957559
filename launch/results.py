"""A sweep's results: each run's best validation score and final test score, best first."""

from __future__ import annotations

import json
import math
import os

from vccjax import atomic

MANIFEST = "sweep.json"  # written by sweep.py: each run's name, overrides and command
RESULTS = "sweep_results.json"


def collect(root: str) -> list[dict]:
  """One row per run under `root`, sorted by best validation overall score (unscored last).

  Runs are those listed in ROOT/sweep.json, else every subdirectory with a config.json.
  Row: name, overrides, best_val_overall (max of `val/overall` in metrics.jsonl, None if never
  evaluated), best_val_step, test_overall (results.json, None until the run finished), status.
  """
  manifest = os.path.join(root, MANIFEST)
  if os.path.exists(manifest):
    with open(manifest) as f:
      listed = [(r["name"], r["overrides"]) for r in json.load(f)["runs"]]
  else:
    listed = [(d, None) for d in sorted(os.listdir(root))
              if os.path.exists(os.path.join(root, d, "config.json"))]
  rows = [_row(os.path.join(root, name), name, overrides) for name, overrides in listed]
  return sorted(rows, key=lambda r: (r["best_val_overall"] is None,
                                     -(r["best_val_overall"] or 0.0), r["name"]))


def _row(workdir: str, name: str, overrides) -> dict:
  scored = [(r["val/overall"], r["step"]) for r in _read_jsonl(os.path.join(workdir,
                                                                            "metrics.jsonl"))
            if _finite(r.get("val/overall"))]
  best, step = max(scored, key=lambda s: (s[0], -s[1])) if scored else (None, None)
  results_path = os.path.join(workdir, "results.json")
  test = None
  if os.path.exists(results_path):
    with open(results_path) as f:
      test = json.load(f).get("test", {}).get("overall")
  status = ("done" if os.path.exists(results_path) else
            "started" if os.path.exists(os.path.join(workdir, "metrics.jsonl")) else "not started")
  return {"name": name, "overrides": overrides, "best_val_overall": best, "best_val_step": step,
          "test_overall": test if _finite(test) else None, "status": status}


def _read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _finite(x) -> bool:
  return isinstance(x, (int, float)) and math.isfinite(x)


def format_table(rows: list[dict]) -> str:
  """A fixed-width text table of `collect` rows."""
  width = max([len(r["name"]) for r in rows] + [4])
  lines = [f"{'run':<{width}}  {'best val':>8}  {'at step':>7}  {'test':>7}  {'status':<11}  "
           "overrides"]
  for r in rows:
    overrides = " ".join(f"{k}={v}" for k, v in (r["overrides"] or {}).items())
    lines.append(f"{r['name']:<{width}}  {_fmt(r['best_val_overall'], 8)}  "
                 f"{_fmt(r['best_val_step'], 7, '.0f')}  {_fmt(r['test_overall'], 7)}  "
                 f"{r['status']:<11}  {overrides}")
  return "\n".join(lines)


def _fmt(x, width: int, spec: str = ".2f") -> str:
  return f"{'-':>{width}}" if x is None else f"{x:>{width}{spec}}"


def write(root: str, rows: list[dict]) -> str:
  return atomic.write_text(os.path.join(root, RESULTS), json.dumps(rows, indent=2))
