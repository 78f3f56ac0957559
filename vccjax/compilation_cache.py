"""XLA's compiled programs kept on disk between runs of a command, as numba keeps its kernels.

`use_for_commands()` points JAX's persistent compilation cache at `<vccjax cache>/xla` (the
directory of `vccjax.data.prepared_cache.default_dir()`), unless the user set JAX's own
`JAX_COMPILATION_CACHE_DIR`. The scorer's evaluator compiles in ~0.5 s at the VCC shape, a tenth
of a file's summary; a run that finds it in the cache skips that. Where the directory cannot be
made, the command runs without the cache (it only costs the compile). Commands call it, not the
library: a test session, or a notebook, keeps JAX's settings as it has them.
"""

from __future__ import annotations

import os

import jax

from vccjax.data import prepared_cache

SUBDIR = "xla"


def directory() -> str:
  """Where the commands' compiled programs go."""
  return os.path.join(prepared_cache.default_dir(), SUBDIR)


def use_for_commands() -> str | None:
  """Turns the cache on for this process; returns its directory (None: the user's own cache is
  kept, or the directory cannot be made)."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return None
  path = directory()
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  # Every program, however small or quick to compile: the evaluator is many short ones.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  return path
