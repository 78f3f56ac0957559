"""Multi-host start-up: `jax.distributed.initialize()` when running on several hosts.

Every process runs the same command. SLURM, Open MPI and Cloud TPU pods are detected by JAX
itself; anywhere else (several machines, or several processes on one machine) name the
coordinator and each process's rank explicitly, e.g. for two processes on this machine:

  python -m vccjax.main ... --coordinator=localhost:12345 --num_processes=2 --process_id=0
  python -m vccjax.main ... --coordinator=localhost:12345 --num_processes=2 --process_id=1
"""

from __future__ import annotations

import os

import jax
from jax.experimental import multihost_utils


def maybe_initialize(flag: bool | None, *, coordinator: str | None = None,
                     num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Initializes the distributed runtime if asked (`flag`) or if the environment implies it.

  `flag=None` decides from the arguments and the environment: an explicit `coordinator`
  (host:port of process 0), a coordinator address in JAX_COORDINATOR_ADDRESS, a multi-task
  SLURM step or a Cloud TPU pod's worker list. Arguments left None are found by JAX (SLURM,
  Open MPI, TPU). Returns whether it initialized.
  """
  if flag is None:
    flag = coordinator is not None or _multi_host_environment()
  if flag:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  return bool(flag)


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (no-op on one process).

  E.g. process 0 writes a file the others then read from a shared filesystem.
  """
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _multi_host_environment() -> bool:
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return True
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return True
  return len(os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1
