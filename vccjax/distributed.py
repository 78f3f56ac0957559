"""Multi-host start-up: `jax.distributed.initialize()` when running on several hosts."""

from __future__ import annotations

import os

import jax


def maybe_initialize(flag: bool | None) -> bool:
  """Initializes the distributed runtime if asked (`flag`) or if the environment implies it.

  `flag=None` decides from the environment: a coordinator address, a multi-task SLURM step or a
  Cloud TPU pod's worker list. Returns whether it initialized.
  """
  if flag is None:
    flag = _multi_host_environment()
  if flag:
    jax.distributed.initialize()
  return bool(flag)


def _multi_host_environment() -> bool:
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return True
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return True
  return len(os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1
