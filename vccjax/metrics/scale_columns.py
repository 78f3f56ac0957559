"""`scale.py`'s two passes for a file whose `X` is CSC on disk: by blocks of genes.

The scaling is per cell (each cell to the file's median total), so a block of genes needs every
cell's total first: the first pass sums each block's values into the cells' totals (float64,
exact for counts), the second scales each value by its cell's float32 size factor
(`count_log1p.scale_cells`, the same float32 operations as for rows), so the same bits as a CSR
copy of the file.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

import numpy as np

from vccjax.data import count_log1p, csc_columns
from vccjax.metrics import scale
from vccjax.metrics import scratch as scratch_lib


def plan_scaling_of_columns(columns: csc_columns.CscColumns, *, where: str = "X",
                            threads: int | None = None,
                            buffers: scratch_lib.ScratchPool | None = None) -> scale.ScalePlan:
  """`scale.plan_scaling_of_rows` of a CSC file: blocks of genes on a thread pool."""
  buffers = buffers or scratch_lib.ScratchPool()
  dtype = np.float64 if columns.value_dtype == np.float64 else np.float32
  n_cells = columns.shape[0]

  def facts(column_range):
    start, stop = column_range
    with buffers.lease() as scratch:
      n = int(columns.colptr[stop] - columns.colptr[start])
      values = scratch.array("data", n, dtype)
      cells = scratch.array("indices", n, np.int32)
      columns.read(start, stop, data=values, indices=cells)
      return (scale.inspect_values(values),
              np.bincount(cells, weights=values, minlength=n_cells),
              np.bincount(cells, minlength=n_cells))

  threads = threads or len(os.sched_getaffinity(0))
  totals, kept = np.zeros(n_cells), np.zeros(n_cells, np.int64)
  found = []
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for values_facts, block_totals, block_kept in pool.map(
        facts, columns.column_ranges(scale._VALUES_PER_READ)):
      scale.check_finite(values_facts, where)
      totals += block_totals
      kept += block_kept
      found.append(values_facts)
  plan = scale.plan_of_facts(found, totals, where=where, sparse=True)
  return dataclasses.replace(plan, kept_indptr=np.r_[0, np.cumsum(kept)])


def read_scaled_columns(columns: csc_columns.CscColumns, start: int, stop: int,
                        scratch: scratch_lib.Scratch, *, plan: scale.ScalePlan) -> tuple:
  """Genes [start, stop) of a CSC file, scaled by `plan` in `scratch`'s buffers.

  Returns:
    (values [n] float32 log1p, cells [n] int32 their rows, colptr [stop - start + 1] int64),
    valid until `scratch` reads the next block.
  """
  n = int(columns.colptr[stop] - columns.colptr[start])
  values = scratch.array("data", n, np.float32)
  cells = scratch.array("indices", n, np.int32)
  colptr = columns.read(start, stop, data=values, indices=cells)
  if plan.counts:
    count_log1p.scale_cells(values, cells, factor=plan.size_factors, table=plan.log1p_table,
                            misses=scratch.array("misses", n, np.int64))
  return values, cells, colptr
