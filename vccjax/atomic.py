"""Atomic writes: a file is written under a partial name beside its target, then renamed onto it.

The partial name is `NAME.partial-HOST-PID`, so a reader never sees half a file and a person can
tell what a leftover is. A partial is removed on any exit Python sees (an exception, Ctrl-C,
`sys.exit`); one left by a killed process is removed by the next write into that directory from
the same host (its process is gone). Files are created with `open`/HDF5 defaults, so they follow
the umask (0644 under the usual 022), unlike `tempfile.mkstemp`'s 0600.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket

MARK = ".partial-"
_live: set[str] = set()  # partials of this process, removed at exit if still there


def partial_path(path: str) -> str:
  """The partial name of `path` for this process, after removing stale partials beside it."""
  path = os.path.abspath(os.fspath(path))
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  remove_stale_partials(directory)
  partial = f"{path}{MARK}{socket.gethostname()}-{os.getpid()}"
  _live.add(partial)
  return partial


def commit(partial: str, path: str) -> str:
  """Renames a finished partial onto `path`."""
  os.replace(partial, path)
  _live.discard(partial)
  return path


def discard(partial: str) -> None:
  """Removes a partial (a failed write); the destination is left untouched."""
  _live.discard(partial)
  with contextlib.suppress(FileNotFoundError):
    os.remove(partial)


@contextlib.contextmanager
def writing(path: str):
  """Yields a partial path to write; renamed onto `path` if the block ends without an error."""
  partial = partial_path(path)
  try:
    yield partial
    commit(partial, os.path.abspath(os.fspath(path)))
  finally:
    discard(partial)


def write_text(path: str, text: str) -> str:
  """Writes `text` to `path` atomically; returns `path`."""
  with writing(path) as partial:
    with open(partial, "w") as f:
      f.write(text)
  return path


def remove_stale_partials(directory: str) -> list[str]:
  """Removes partials in `directory` written on this host by processes no longer alive."""
  removed, host = [], socket.gethostname()
  try:
    names = os.listdir(directory)
  except OSError:
    return removed
  for name in names:
    writer_host, _, pid = name.rpartition(MARK)[2].rpartition("-")
    if MARK not in name or writer_host != host or not pid.isdigit() or _alive(int(pid)):
      continue
    try:
      os.remove(os.path.join(directory, name))
    except OSError:
      continue  # gone already, or not a file of ours
    removed.append(name)
  return removed


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # someone else's live process
  return True


@atexit.register
def _remove_live() -> None:
  for partial in list(_live):
    discard(partial)
