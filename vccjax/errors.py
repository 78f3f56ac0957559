"""The one error type for bad user input: its message names the file, the field and the fix."""


class InputError(ValueError):
  """Bad input data or arguments. Command-line tools print it as one line and exit 1."""

  def __init__(self, where: str, problem: str, fix: str = ""):
    self.where, self.problem, self.fix = where, problem, fix
    message = f"{where}: {problem}"
    if fix:
      message += f" (fix: {fix})"
    super().__init__(message)


def cli_exit_on_input_error(main_fn):
  """Wraps an absl/argparse `main` so an InputError prints one line and exits 1, no traceback."""
  import functools
  import sys

  @functools.wraps(main_fn)
  def wrapped(*args, **kwargs):
    try:
      return main_fn(*args, **kwargs)
    except InputError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)

  return wrapped
