"""Rewrites a CSR `.h5ad` file with `X` dense or CSC, streamed (never the whole matrix in memory).

anndata writes a dense `X` or a CSC one only from a matrix held whole (4.3 GB dense, ~8 GB for a
CSR-to-CSC conversion at the VCC validation shape); the benchmark needs both layouts of the same
cells without that. The result is an ordinary `.h5ad` (anndata's own encoding of `obs`, `var` and
`X`), written to a temporary file then renamed.
"""

from __future__ import annotations

import os

import anndata as ad
import h5py
import numpy as np
import scipy.sparse as sp

_ROWS_PER_CHUNK = 2048
_GENES_PER_BLOCK = 2048


def write_layout(csr_path: str, path: str, layout: str) -> str:
  """Writes the cells of `csr_path` (X CSR) to `path` with X `layout`: "dense" or "csc"."""
  src = ad.read_h5ad(csr_path, backed="r")
  tmp = f"{path}.tmp"
  ad.AnnData(obs=src.obs.copy(), var=src.var.copy()).write_h5ad(tmp)
  n_cells, n_genes = src.shape
  with h5py.File(csr_path, "r") as f_in, h5py.File(tmp, "a") as f_out:
    x = f_in["X"]
    indptr = x["indptr"][:].astype(np.int64)
    if "X" in f_out:
      del f_out["X"]
    if layout == "dense":
      out = f_out.create_dataset("X", (n_cells, n_genes), np.float32)
      out.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
      for start, rows in _csr_row_chunks(x, indptr, n_genes):
        out[start:start + rows.shape[0]] = rows.toarray()
    elif layout == "csc":
      _write_csc(f_out, x, indptr, (n_cells, n_genes))
    else:
      raise ValueError(f"unknown layout {layout!r}")
  os.replace(tmp, path)
  return path


def _csr_row_chunks(x, indptr, n_genes):
  for start in range(0, len(indptr) - 1, _ROWS_PER_CHUNK):
    stop = min(start + _ROWS_PER_CHUNK, len(indptr) - 1)
    lo, hi = indptr[start], indptr[stop]
    yield start, sp.csr_matrix((x["data"][lo:hi], x["indices"][lo:hi], indptr[start:stop + 1] - lo),
                               shape=(stop - start, n_genes))


def _write_csc(f_out, x, indptr, shape):
  """CSC by blocks of genes: each block gathered from every row chunk, then appended."""
  n_cells, n_genes = shape
  group = f_out.create_group("X")
  group.attrs.update({"encoding-type": "csc_matrix", "encoding-version": "0.1.0",
                      "shape": np.array(shape)})
  data = group.create_dataset("data", (0,), np.float32, maxshape=(None,), chunks=(1 << 20,))
  indices = group.create_dataset("indices", (0,), np.int32, maxshape=(None,), chunks=(1 << 20,))
  colptr = [0]
  for lo in range(0, n_genes, _GENES_PER_BLOCK):
    hi = min(lo + _GENES_PER_BLOCK, n_genes)
    block = sp.vstack([rows[:, lo:hi] for _, rows in _csr_row_chunks(x, indptr, n_genes)],
                      format="csr").tocsc()
    block.sort_indices()
    end = len(data)
    data.resize((end + block.nnz,))
    indices.resize((end + block.nnz,))
    data[end:] = block.data
    indices[end:] = block.indices
    colptr.extend((end + block.indptr[1:]).tolist())
  group.create_dataset("indptr", data=np.array(colptr, np.int64))
