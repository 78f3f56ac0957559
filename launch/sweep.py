r"""Expands a sweep defined next to its config into training runs, and runs or schedules them.

A sweep is a generator `sweep_<NAME>()` in the config file that yields one dict of config
overrides per run (see the end of configs/set_tx.py):

  def sweep_lr():
    for lr in (3e-4, 1e-3, 3e-3):
      yield {"optim.lr": lr}

Each point becomes `python -m vccjax.main --config=CONFIG --workdir=ROOT/<run> --config.k=v ...`:

  python launch/sweep.py --config=configs/set_tx.py:demo --sweep=lr --workdir=/runs/lr \
      [--mode local|slurm|tpu] [--parallel N] [--dry-run] [--set train.steps=500 ...]
  python launch/sweep.py --collect /runs/lr

* local: runs the commands here, `--parallel` at a time, each logged to ROOT/<run>/log.txt, then
  collects the results.
* slurm: writes ROOT/sweep.sbatch, a job array with one task per run (`sbatch ROOT/sweep.sbatch`).
* tpu: prints one `gcloud compute tpus tpu-vm ssh ... --worker=all` command per run.

`--dry-run` prints what would run (the commands; for slurm the script) and changes nothing.
`--set k=v` applies to every run and wins over the sweep's value for the same key.
`--collect ROOT` gathers each run's best validation overall score (max of `val/overall` in
metrics.jsonl) and final test overall (results.json) into a table, printed and written to
ROOT/sweep_results.json, best first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import sys

if __package__ in (None, ""):  # run as `python launch/sweep.py`: make `launch` importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch import results  # noqa: E402
from launch import runners  # noqa: E402
from vccjax import atomic  # noqa: E402
from vccjax import config_file  # noqa: E402
from vccjax.errors import InputError, cli_exit_on_input_error  # noqa: E402

MANIFEST = results.MANIFEST


@dataclasses.dataclass(frozen=True)
class Run:
  """One point of a sweep.

  Attributes:
    name: directory name under the sweep root (index first, so names are distinct and ordered).
    overrides: {dotted config key: value as written on the command line}.
    workdir: the run's workdir.
    argv: the command, starting with `python`.
  """
  name: str
  overrides: dict
  workdir: str
  argv: list

  @property
  def command(self) -> str:
    return shlex.join(self.argv)



def sweep_points(module, name: str, *, where: str) -> list[dict]:
  """The override dicts that `module.sweep_<name>()` yields."""
  available = sorted(k[len("sweep_"):] for k in vars(module) if k.startswith("sweep_"))
  fn = getattr(module, f"sweep_{name}", None)
  if not callable(fn):
    raise InputError(f"--sweep={name}", f"no function sweep_{name} in {where}",
                     f"use one of {available}" if available else f"define sweep_{name}() there")
  points = [dict(p) for p in fn()]
  if not points:
    raise InputError(f"--sweep={name}", "the sweep yields no points", "yield at least one dict")
  return points


def format_value(key: str, value) -> str:
  """A Python value as `--config.key=...` accepts it (config_flags parses by the field's type)."""
  if isinstance(value, (bool, int, float, str)):
    return str(value) if not isinstance(value, float) else repr(value)
  raise InputError(f"{key}={value!r}", f"unsupported value type {type(value).__name__}",
                   "use bool, int, float or str")


def parse_set(items: list[str]) -> dict:
  """`--set k=v` strings -> {k: v}; a leading `config.` or `--config.` is optional."""
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    key = re.sub(r"^(--)?config\.", "", key.strip())
    if not sep or not key:
      raise InputError(f"--set {item}", "not of the form key=value", "e.g. --set train.steps=500")
    out[key] = value
  return out


def override_flags(overrides: dict) -> list[str]:
  return [f"--config.{k}={v}" for k, v in overrides.items()]


def run_name(index: int, point: dict) -> str:
  """`03_lr=0.003`: index, then each override's last key part and value, safe for file names."""
  parts = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in point.items()]
  return re.sub(r"[^A-Za-z0-9._=+-]", "-", "_".join([f"{index:02d}"] + parts))[:100]


def expand(*, config_arg: str, sweep: str, root: str, fixed: dict) -> list[Run]:
  """The runs of sweep `sweep` in `config_arg`'s file, every one checked against the config."""
  module = config_file.config_module(config_arg)
  runs = []
  for i, point in enumerate(sweep_points(module, sweep, where=config_arg.split(":")[0])):
    point = {k: format_value(k, v) for k, v in point.items()}
    overrides = {**point, **fixed}
    config_file.check_overrides(config_arg, override_flags(overrides))
    name = run_name(i, point)
    workdir = os.path.join(root, name)
    argv = ["python", "-m", "vccjax.main", f"--config={config_arg}", f"--workdir={workdir}",
            *override_flags(overrides)]
    runs.append(Run(name=name, overrides=overrides, workdir=workdir, argv=argv))
  return runs


def write_manifest(root: str, *, config_arg: str, sweep: str, runs: list[Run]) -> None:
  """ROOT/sweep.json: what `--collect` reports each run's overrides from."""
  os.makedirs(root, exist_ok=True)
  manifest = {"config": config_arg, "sweep": sweep,
              "runs": [{"name": r.name, "overrides": r.overrides, "command": r.command}
                       for r in runs]}
  atomic.write_text(os.path.join(root, MANIFEST), json.dumps(manifest, indent=2))


def parse_args(argv=None):
  p = argparse.ArgumentParser(prog="python launch/sweep.py", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", help="config file and variant, e.g. configs/set_tx.py:demo")
  p.add_argument("--sweep", help="NAME of the config file's sweep_NAME()")
  p.add_argument("--workdir", help="sweep root: each run writes to ROOT/<run name>")
  p.add_argument("--mode", choices=("local", "slurm", "tpu"), default="local")
  p.add_argument("--parallel", type=int, default=1, help="local runs at a time")
  p.add_argument("--dry-run", action="store_true", help="print what would run; change nothing")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override for every run (wins over the sweep's value)")
  p.add_argument("--collect", metavar="ROOT", help="only collect the results under ROOT")
  runners.add_slurm_args(p)
  runners.add_tpu_args(p)
  args = p.parse_args(argv)
  if not args.collect and not (args.config and args.sweep and args.workdir):
    p.error("--config, --sweep and --workdir are required (or --collect ROOT)")
  if args.parallel < 1:
    p.error("--parallel must be at least 1")
  return args


@cli_exit_on_input_error
def main(argv=None) -> list[dict] | None:
  args = parse_args(argv)
  if args.collect:
    return _collect(args.collect)
  root = os.path.abspath(args.workdir)
  runs = expand(config_arg=args.config, sweep=args.sweep, root=root, fixed=parse_set(args.set))
  if args.mode == "slurm":
    script = runners.slurm_script(runs, root=root, job_name=f"vccjax-{args.sweep}", args=args)
    if args.dry_run:
      print(script, end="")
      return None
    write_manifest(root, config_arg=args.config, sweep=args.sweep, runs=runs)
    path = runners.write_file(os.path.join(root, "sweep.sbatch"), script)
    print(f"[sweep] {len(runs)} runs: wrote {path}; submit with: sbatch {shlex.quote(path)}")
    return None
  if args.mode == "tpu" or args.dry_run:
    lines = ([runners.tpu_command(r, args) for r in runs] if args.mode == "tpu"
             else [r.command for r in runs])
    print("\n".join(lines))
    if args.mode == "tpu" and not args.dry_run:
      write_manifest(root, config_arg=args.config, sweep=args.sweep, runs=runs)
    return None
  write_manifest(root, config_arg=args.config, sweep=args.sweep, runs=runs)
  codes = runners.run_local(runs, parallel=args.parallel)
  rows = _collect(root)
  failed = [r.name for r in runs if codes[r.name] != 0]
  if failed:
    raise InputError(root, f"{len(failed)} of {len(runs)} runs failed: {failed}",
                     "see ROOT/<run>/log.txt")
  return rows


def _collect(root: str) -> list[dict]:
  if not os.path.isdir(root):
    raise InputError(root, "--collect: no such directory", "pass the --workdir the sweep ran in")
  rows = results.collect(root)
  print(results.format_table(rows))
  path = results.write(root, rows)
  print(f"[sweep] wrote {path}")
  return rows


if __name__ == "__main__":
  main()
