"""A cache of prepared datasets: what `load_dataset`'s passes over the counts compute, kept on disk.

An entry is keyed by the file's identity (absolute path, size, mtime and a SHA-256 of its first
MiB), by the settings that shape the arrays (control label, input genes, pseudocount, chunk size)
and by the source of the modules that compute them: a changed file, setting or computation is a
new key, never a stale hit. It lives under
`cache_dir`, by default `$VCCJAX_CACHE_DIR`, else `$XDG_CACHE_HOME/vccjax`, else
`~/.cache/vccjax`. An entry is a directory of one `.npy` per array plus `manifest.json` (the
scalars and each file's size and CRC-32); it is written as a partial directory and renamed, and an
entry that does not match its manifest (truncated, edited) is removed and rebuilt with a one-line
notice. Beyond `MAX_BYTES` in all, the least recently used entries are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib

import numpy as np

from vccjax import atomic

VERSION = 1  # bump when the entry layout changes
# The modules whose code computes the prepared arrays: their source is part of every key, so a
# changed computation never reads an entry written by an older one.
_CODE = ("dataset.py", "count_passes.py", "count_log1p.py", "normalize.py", "io.py", "targets.py",
         "streaming.py", "features.py")
MAX_BYTES = 32 * 2**30
MANIFEST = "manifest.json"
_READ_BLOCK = 64 * 2**20


def default_dir() -> str:
  if os.environ.get("VCCJAX_CACHE_DIR"):
    return os.environ["VCCJAX_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "vccjax")


def entry_key(path: str, settings: dict) -> str:
  """The key of `path` prepared with `settings` (JSON-serialisable)."""
  path = os.path.abspath(path)
  stat = os.stat(path)
  with open(path, "rb") as f:
    header = hashlib.sha256(f.read(2**20)).hexdigest()
  identity = {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
              "header_sha256": header, "settings": settings, "version": VERSION,
              "code_sha256": _code_digest()}
  digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
  return f"{os.path.splitext(os.path.basename(path))[0][:40]}-{digest}"


def _code_digest() -> str:
  here = os.path.dirname(os.path.abspath(__file__))
  digest = hashlib.sha256()
  for name in _CODE:
    with open(os.path.join(here, name), "rb") as f:
      digest.update(f.read())
  return digest.hexdigest()


def load(cache_dir: str, key: str, log=print) -> dict | None:
  """The entry's arrays and scalars, or None when absent or damaged (then it is removed)."""
  entry = os.path.join(cache_dir, key)
  manifest_path = os.path.join(entry, MANIFEST)
  if not os.path.isfile(manifest_path):
    return None
  try:
    with open(manifest_path) as f:
      manifest = json.load(f)
    out = dict(manifest["scalars"])
    for name, (size, crc) in manifest["arrays"].items():
      out[name] = _read_checked(os.path.join(entry, f"{name}.npy"), size, crc)
  except (OSError, ValueError, KeyError, TypeError) as e:
    log(f"[data] cache entry {entry} is damaged ({e}): removed, preparing again")
    shutil.rmtree(entry, ignore_errors=True)
    return None
  os.utime(manifest_path)  # most recently used
  return out


def save(cache_dir: str, key: str, arrays: dict, scalars: dict) -> str:
  """Writes an entry atomically (a partial directory, then a rename); returns its path."""
  os.makedirs(cache_dir, exist_ok=True)
  entry = os.path.join(cache_dir, key)
  partial = atomic.partial_path(entry)
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  try:
    files = {}
    for name, value in arrays.items():
      file = os.path.join(partial, f"{name}.npy")
      np.save(file, np.asarray(value))
      files[name] = [os.path.getsize(file), _crc32(file)]
    with open(os.path.join(partial, MANIFEST), "w") as f:
      json.dump({"arrays": files, "scalars": scalars, "version": VERSION}, f)
    if os.path.isdir(entry):  # written meanwhile by another run: keep one
      shutil.rmtree(entry, ignore_errors=True)
    os.replace(partial, entry)
  finally:  # a failed write: the partial directory goes first, then its registration
    shutil.rmtree(partial, ignore_errors=True)
    atomic.discard(partial)
  evict(cache_dir, keep=key)
  return entry


def evict(cache_dir: str, *, keep: str, max_bytes: int = MAX_BYTES) -> list[str]:
  """Removes the least recently used entries (never `keep`) until the cache fits `max_bytes`."""
  entries = []
  for name in os.listdir(cache_dir):
    manifest = os.path.join(cache_dir, name, MANIFEST)
    if os.path.isfile(manifest):
      size = sum(e.stat().st_size for e in os.scandir(os.path.join(cache_dir, name)))
      entries.append((os.stat(manifest).st_mtime, name, size))
  total, removed = sum(e[2] for e in entries), []
  for _, name, size in sorted(entries):
    if total <= max_bytes:
      break
    if name != keep:
      shutil.rmtree(os.path.join(cache_dir, name), ignore_errors=True)
      total -= size
      removed.append(name)
  return removed


def _crc32(path: str) -> int:
  crc = 0
  with open(path, "rb") as f:
    while block := f.read(_READ_BLOCK):
      crc = zlib.crc32(block, crc)
  return crc


def _read_checked(path: str, size: int, crc: int) -> np.ndarray:
  """Reads a `.npy` whose bytes must have `size` and CRC-32 `crc` (ValueError otherwise).

  The data are read straight into the array, checksummed block by block (no second copy).
  """
  if os.path.getsize(path) != size:
    raise ValueError(f"{os.path.basename(path)} has {os.path.getsize(path)} bytes, not {size}")
  fmt = np.lib.format
  with open(path, "rb") as f:
    version = fmt.read_magic(f)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran_order, dtype = read_header(f)
    header_len = f.tell()
    f.seek(0)
    crc_now = zlib.crc32(f.read(header_len))
    array = np.empty(shape, dtype, order="F" if fortran_order else "C")
    view = memoryview(array.reshape(-1, order="A")).cast("B")
    at = 0
    while at < len(view):
      n = f.readinto(view[at:at + _READ_BLOCK])
      if not n:
        raise ValueError(f"{os.path.basename(path)} ends early")
      crc_now = zlib.crc32(view[at:at + n], crc_now)
      at += n
  if crc_now != crc:
    raise ValueError(f"{os.path.basename(path)} fails its checksum")
  return array
