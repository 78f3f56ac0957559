"""Loading a config file `path[:variant]` outside absl flags (benchmarks, launchers, notebooks)."""

from __future__ import annotations

import importlib.util
import os

from vccjax.errors import InputError

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "configs", "set_tx.py")


def config_module(spec: str = DEFAULT_CONFIG):
  """The Python module of `path[:variant]` (its `get_config` and `sweep_*` functions)."""
  path = spec.split(":", 1)[0]
  if not os.path.isfile(path):
    raise InputError(path, "config file not found", "pass e.g. --config=configs/set_tx.py:demo")
  module_spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load_config(spec: str = DEFAULT_CONFIG, variant: str | None = None):
  """`get_config(variant)` of a config file; the variant may also follow the path (`p:v`)."""
  path, _, in_spec = spec.partition(":")
  return config_module(path).get_config(variant or in_spec or None)
