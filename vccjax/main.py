"""Entry point: `python -m vccjax.main --config=configs/set_tx.py[:VARIANT] --workdir=DIR`.

Flags, logging and dispatch only; the work is `vccjax.train.loop.train_and_evaluate`.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from vccjax import config_file
from vccjax.errors import InputError, cli_exit_on_input_error
from vccjax.train import distributed
from vccjax.train import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/set_tx.py:demo.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", None, "Call jax.distributed.initialize() (default: when the environment names "
    "a coordinator, e.g. --coordinator, JAX_COORDINATOR_ADDRESS, SLURM or a Cloud TPU pod).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "host:port of process 0 on a multi-process run where JAX cannot find it "
    "(not SLURM, Open MPI or Cloud TPU); with --num_processes and --process_id.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's rank, 0 .. num_processes-1.")
_FRESH = flags.DEFINE_bool("fresh", False, "Start the workdir's run over: remove its checkpoints, "
                           "metrics and results first (default: resume it).")

flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax/jax INFO chatter drowns the progress lines
  distributed.maybe_initialize(_MULTIHOST.value, coordinator=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  try:
    loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value, fresh=_FRESH.value)
  except (InputError, loop.NonFiniteLossError) as e:
    raise SystemExit(f"error: {e}")


def check_command_line(argv: list[str]) -> None:
  """Raises InputError for a missing config file or a bad `--config.*` override.

  Runs before absl parses the flags (its errors there are tracebacks) and before any workdir is
  made. argv: the arguments after the program name.
  """
  spec, overrides = None, []
  for i, arg in enumerate(argv):
    name, has_value, value = arg.partition("=")
    if not has_value and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
      value = argv[i + 1]
    if name in ("--config", "-config"):
      spec = value
    elif name.startswith(("--config.", "-config.")):
      overrides.append(f"--config.{name.split('config.', 1)[1]}" + (f"={value}" if value else ""))
  if spec:
    config_file.check_overrides(spec, overrides)


if __name__ == "__main__":
  cli_exit_on_input_error(check_command_line)(sys.argv[1:])
  app.run(main)
