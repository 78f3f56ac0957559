"""Where a sweep's runs go: this machine, a SLURM job array, or Cloud TPU VMs."""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import subprocess
import sys
import time

from vccjax import atomic


def add_slurm_args(parser) -> None:
  g = parser.add_argument_group("slurm (--mode=slurm)")
  g.add_argument("--nodes", type=int, default=1,
                 help="nodes per run; >1 trains one run over several nodes (one task per node)")
  g.add_argument("--gpus-per-node", type=int, default=1)
  g.add_argument("--cpus-per-task", type=int, default=8)
  g.add_argument("--time", default="24:00:00", help="wall-clock limit per run")
  g.add_argument("--partition", default="", help="SLURM partition (default: the cluster's)")


def add_tpu_args(parser) -> None:
  g = parser.add_argument_group("tpu (--mode=tpu)")
  g.add_argument("--tpu", default="vccjax-tpu", help="TPU VM (or pod slice) name")
  g.add_argument("--zone", default="us-central2-b")
  g.add_argument("--tpu-repo", default="~/vccjax", help="the repository's path on the TPU VMs")


def write_file(path: str, text: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return atomic.write_text(path, text)


def slurm_script(runs, *, root: str, job_name: str, args) -> str:
  """A job-array script: task i runs `runs[i]` with `srun`, one task per node.

  srun starts the training once per node; `vccjax.main` sees SLURM_NTASKS > 1 and calls
  `jax.distributed.initialize()`, so a multi-node run trains one model data-parallel.
  """
  header = [
      "#!/bin/bash",
      f"# {len(runs)} runs; submit from an environment with vccjax installed: sbatch {root}/"
      "sweep.sbatch",
      f"#SBATCH --job-name={job_name}",
      f"#SBATCH --array=0-{len(runs) - 1}",
      f"#SBATCH --nodes={args.nodes}",
      "#SBATCH --ntasks-per-node=1",
      f"#SBATCH --gres=gpu:{args.gpus_per_node}",
      f"#SBATCH --cpus-per-task={args.cpus_per_task}",
      f"#SBATCH --time={args.time}",
      f"#SBATCH --output={root}/slurm-%A_%a.out",
  ]
  if args.partition:
    header.append(f"#SBATCH --partition={args.partition}")
  # Relative paths in the commands (the config file) are relative to where the sweep was made.
  body = ["set -euo pipefail", f"cd {shlex.quote(os.getcwd())}",
          'case "$SLURM_ARRAY_TASK_ID" in']
  body += [f"  {i}) srun {r.command} ;;" for i, r in enumerate(runs)]
  body += ['  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;', "esac"]
  return "\n".join(header + [""] + body) + "\n"


def tpu_command(run, args) -> str:
  """`gcloud compute tpus tpu-vm ssh` running `run` on every worker of the TPU VM or pod slice.

  `--multihost` makes each worker call `jax.distributed.initialize()` (Cloud TPU finds its peers
  itself); on a single-host VM it is harmless.
  """
  remote = f"cd {args.tpu_repo} && {run.command} --multihost"
  return shlex.join(["gcloud", "compute", "tpus", "tpu-vm", "ssh", args.tpu, f"--zone={args.zone}",
                     "--worker=all", f"--command={remote}"])


def run_local(runs, *, parallel: int) -> dict[str, int]:
  """Runs each command here, `parallel` at a time, output to `workdir/log.txt`; {name: exit code}."""
  env = dict(os.environ)
  if parallel > 1:
    # Several JAX processes on one GPU: without this the first grabs 75% of its memory.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
    codes = dict(zip([r.name for r in runs], pool.map(lambda r: _run_one(r, env), runs)))
  return codes


def _run_one(run, env) -> int:
  os.makedirs(run.workdir, exist_ok=True)
  log_path = os.path.join(run.workdir, "log.txt")
  print(f"[sweep] {run.name}: started (log: {log_path})", flush=True)
  t0 = time.time()
  with open(log_path, "w") as log:
    log.write(run.command + "\n")
    log.flush()
    # This interpreter rather than whatever `python` is first on PATH.
    code = subprocess.run([sys.executable, *run.argv[1:]], stdout=log, stderr=subprocess.STDOUT,
                          env=env).returncode
  status = "done" if code == 0 else f"FAILED (exit {code})"
  print(f"[sweep] {run.name}: {status} in {time.time() - t0:.0f}s", flush=True)
  return code
