"""Loading a config file `path[:variant]` outside absl flags (benchmarks, launchers, notebooks)."""

from __future__ import annotations

import difflib
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


def check_overrides(spec: str, override_flags: list[str]) -> None:
  """Raises InputError unless `vccjax.main` would accept `--config=spec` with these flags.

  override_flags: `--config.KEY=VALUE` strings. Keys are checked against the config first (an
  unknown key names the closest field), then the whole command line is parsed by ml_collections'
  config_flags, the parser `vccjax.main` uses (a value of the wrong type).
  """
  from absl import flags
  from ml_collections import config_flags
  try:
    base = load_config(spec)
  except InputError:
    raise
  except ValueError as e:  # e.g. an unknown variant
    raise InputError(spec, str(e)) from None
  fields = _leaf_keys(base)
  for flag in override_flags:
    key = flag.split("=", 1)[0].removeprefix("--config.")
    group = [k for k in fields if k.startswith(f"{key}.")]
    if group:
      raise InputError(f"--config.{key}", "is a group of fields, not a field",
                       f"set one of its fields, e.g. --config.{group[0]}")
    if key not in fields:
      close = difflib.get_close_matches(key, fields, n=1)
      raise InputError(f"--config.{key}", f"no such field in {spec}",
                       f"did you mean --config.{close[0]}?" if close else "see the config's fields")
  argv = ["check", f"--config={spec}", *override_flags]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                  sys_argv=argv)
  try:
    values(argv)
  except flags.Error as e:
    raise InputError(f"--config={spec}", " ".join(str(e).split())[:300],
                     "give each field a value of its type") from None


def _leaf_keys(config, prefix: str = "") -> list[str]:
  keys = []
  for k, v in config.items():
    name = f"{prefix}{k}"
    keys += _leaf_keys(v, f"{name}.") if hasattr(v, "items") else [name]
  return keys
