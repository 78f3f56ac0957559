"""The prepared-data cache: identical arrays, a hit without a pass over X, never a stale entry."""

import dataclasses
import os
import shutil

import anndata as ad
import numpy as np
import pytest

from conftest import shared
from vccjax.data import dataset
from vccjax.data import prepared_cache

HIT = "prepared arrays from the cache"


def _load(path, cache_dir, **kwargs):
  return dataset.load_dataset(path, n_hvg=kwargs.pop("n_hvg", 300), values_per_range=20_000, cache=True,
                              cache_dir=str(cache_dir), verbose=True, **kwargs)


def _assert_same(a, b):
  for field in dataclasses.fields(dataset.PerturbDataset):
    if field.name in ("adata", "labels", "path", "prepared_from_cache", "cache_entry"):
      continue
    x, y = getattr(a, field.name), getattr(b, field.name)
    if isinstance(x, np.ndarray):
      assert x.dtype == y.dtype and x.shape == y.shape, field.name
      np.testing.assert_array_equal(x, y, err_msg=field.name)
    else:
      assert x == y, field.name


@pytest.fixture
def h1_copy(tmp_path):
  path = tmp_path / "h1.h5ad"
  shutil.copyfile(shared("vcc_h1_subset.h5ad"), path)
  return str(path)


def test_a_second_load_reads_the_cache_and_gives_identical_arrays(h1_copy, tmp_path, capsys):
  cold = dataset.load_dataset(h1_copy, n_hvg=300, values_per_range=20_000)
  first = _load(h1_copy, tmp_path / "cache")
  assert HIT not in capsys.readouterr().out
  second = _load(h1_copy, tmp_path / "cache")
  assert HIT in capsys.readouterr().out
  assert second.prepared_from_cache and not first.prepared_from_cache
  _assert_same(cold, first)
  _assert_same(cold, second)
  assert second.hvg_log1p.flags.writeable and second.hvg_log1p.flags.c_contiguous


def test_a_changed_file_or_setting_is_a_new_entry(h1_copy, tmp_path, capsys):
  cache = tmp_path / "cache"
  _load(h1_copy, cache)
  _load(h1_copy, cache, n_hvg=200)  # another setting
  assert HIT not in capsys.readouterr().out
  adata = ad.read_h5ad(h1_copy)
  adata.X = adata.X.copy()
  adata.X[0, :] = adata.X[0, :] * 2  # one cell's counts doubled, same file name
  adata.write_h5ad(h1_copy)
  changed = _load(h1_copy, cache)
  assert HIT not in capsys.readouterr().out
  _assert_same(changed, dataset.load_dataset(h1_copy, n_hvg=300, values_per_range=20_000))
  assert len(os.listdir(cache)) == 3


def test_a_truncated_entry_is_rebuilt_with_a_notice(h1_copy, tmp_path, capsys):
  cache = tmp_path / "cache"
  cold = _load(h1_copy, cache)
  (entry,) = os.listdir(cache)
  npy = cache / entry / "hvg_log1p.npy"
  with open(npy, "r+b") as f:
    f.truncate(os.path.getsize(npy) // 2)
  capsys.readouterr()
  rebuilt = _load(h1_copy, cache)
  out = capsys.readouterr().out
  notices = [line for line in out.splitlines() if "is damaged" in line]
  assert len(notices) == 1 and "hvg_log1p.npy has" in notices[0], out
  assert HIT not in out
  _assert_same(cold, rebuilt)
  _load(h1_copy, cache)
  assert HIT in capsys.readouterr().out


def test_a_flipped_byte_fails_the_checksum(h1_copy, tmp_path, capsys):
  cache = tmp_path / "cache"
  cold = _load(h1_copy, cache)
  (entry,) = os.listdir(cache)
  npy = cache / entry / "target_lfc.npy"
  raw = bytearray(npy.read_bytes())
  raw[-3] ^= 0x40
  npy.write_bytes(bytes(raw))
  capsys.readouterr()
  _assert_same(cold, _load(h1_copy, cache))
  assert "target_lfc.npy fails its checksum" in capsys.readouterr().out


def test_least_recently_used_entries_are_evicted(h1_copy, tmp_path):
  cache = tmp_path / "cache"
  for n_hvg in (100, 200, 300):
    _load(h1_copy, cache, n_hvg=n_hvg)
  entries = sorted(os.listdir(cache), key=lambda e: os.stat(cache / e / "manifest.json").st_mtime)
  size = sum(f.stat().st_size for f in os.scandir(cache / entries[-1]))
  removed = prepared_cache.evict(str(cache), keep=entries[0], max_bytes=2 * size)
  assert removed == [entries[1]]  # the oldest but the kept one
