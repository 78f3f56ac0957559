"""The only module that knows about meshes: data parallel over every device (all hosts).

Parameters and optimizer state are replicated; batches are split along their leading (set)
axis. One code path for 1 CPU, 8 GPUs or a TPU pod slice: `jax.jit` with `NamedSharding`.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: all global devices)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Leading axis split over the data axis, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"config.data.batch_size={batch_size} must be a multiple of the "
                     f"{n} devices (fix: --config.data.batch_size={max(n, batch_size // n * n)})")


def process_sets(batch_size: int, mesh: Mesh) -> np.ndarray:
  """Positions along the global batch's leading (set) axis that this process's devices hold.

  `put_batch` expects each process to pass exactly these sets, in this order (all of them on one
  process; the process_index-th contiguous block when `jax.devices()` lists hosts in turn).
  Returns: [batch_size // processes] int64, increasing.
  """
  check_batch_size(batch_size, mesh)
  held = data_sharded(mesh).addressable_devices_indices_map((batch_size,)).values()
  return np.unique(np.concatenate([np.arange(batch_size)[index] for index in held]))


def put_batch(tree, mesh: Mesh):
  """Places a host-local NumPy batch (this process's `process_sets`) as a global array."""
  sharding = data_sharded(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def put_replicated(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))


def host_local(tree):
  """A replicated global pytree as arrays on one of this process's devices.

  Work that every process repeats on its own (evaluation) then runs no cross-host collective,
  so the processes cannot fall out of step inside it. One process: `tree` unchanged.
  """
  if jax.process_count() == 1:
    return tree
  return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)
