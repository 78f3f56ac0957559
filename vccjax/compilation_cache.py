"""XLA's compiled programs kept on disk between runs of a command, as numba keeps its kernels.

`use_for_commands()` points JAX's persistent compilation cache at `<vccjax cache>/xla` (the
directory of `vccjax.data.prepared_cache.default_dir()`), unless the user set JAX's own
`JAX_COMPILATION_CACHE_DIR`. The scorer's evaluator compiles in ~0.5 s at the VCC shape, a tenth
of a file's summary; a run that finds it in the cache skips that. An unreadable or unwritable
directory only costs the compile (JAX warns and goes on). Commands call it, not the library: a
test session, or a notebook, keeps JAX's settings as it has them.
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
  """Turns the cache on for this process; returns its directory (None: the user's own is kept)."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return None
  path = directory()
  jax.config.update("jax_compilation_cache_dir", path)
  # Every program, however small or quick to compile: the evaluator is many short ones.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  return path
