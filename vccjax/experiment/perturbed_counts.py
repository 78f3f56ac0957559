"""Compiled kernels of the predicted cells' counts: expected counts, systematic rounding, CSR.

`predicted_cells.perturbed_log1p` calls them on blocks of genes on every core (numba, `nogil`).
They do, value for value, the float64 operations of the NumPy reference
(`predicted_cells.sample_perturbed_counts`), so the counts are the same bits; what they save is
the dozen [cells, genes] temporaries of the reference and most of its sorting: a cell whose
expected count is a whole number (most often 0: a gene not detected in that control and not
going up) moves no cumulative sum of the systematic sample, so only the other cells of a gene
are put in their random order.
"""

from __future__ import annotations

import numba
import numpy as np


def round_genes(counts, fold, scale, control_counts, order_keys, start, out) -> None:
  """Rounded perturbed counts of a block of genes into `out` (`sample_perturbed_counts`).

  Args:
    counts: [n, G] float64 the drawn control cells' counts.
    fold: [n, G] float32 predicted fold changes (clipped and exponentiated by NumPy).
    scale: [n] float64 raw counts per normalised count of each cell (total / target_sum).
    control_counts: [G] float64 the matched controls' mean normalised counts.
    order_keys: [n, G] float64 uniform draws (NumPy's `random`): the cells' order per gene.
    start: [G] float64 uniform draws: the systematic sample's offset per gene.
    out: [n, G] float64 receives the integer-valued counts.
  """
  n, n_genes = counts.shape
  bits = max(int(np.ceil(np.log2(max(n, 2)))), 1)
  packed = np.empty((n_genes, n), np.uint64)
  base, frac = np.empty((n, n_genes)), np.empty((n, n_genes))
  lengths = _expected_counts(counts, fold, scale, control_counts, order_keys, bits, packed, base,
                             frac)
  packed.sort(axis=1)  # NumPy's vectorised sort (releases the GIL)
  _systematic_sample(packed, lengths, base, frac, order_keys, start, bits, out)


# A NumPy `random` draw is j / 2**53 for an integer j < 2**53.
_KEY_SCALE = float(2**53)


@numba.njit(nogil=True, cache=True)
def _expected_counts(counts, fold, scale, control_counts, order_keys, bits, packed, base, frac):
  """base, frac [n, G] of each expected count (`_perturbed_mean`); packed [G, n] holds, per
  gene, (key, cell) of the cells with a fractional part (then the largest uint64); returns [G]
  how many."""
  n, n_genes = counts.shape
  drop = max(53 + bits - 64, 0)  # key bits dropped to make room for the cell
  empty = np.uint64(0xFFFFFFFFFFFFFFFF)
  lengths = np.zeros(n_genes, np.int64)
  drawn = np.zeros(n_genes)
  for c in range(n):  # (counts / scale).mean(0), summed over cells in order as NumPy does
    for g in range(n_genes):
      drawn[g] += counts[c, g] / scale[c]
  rescale = np.ones(n_genes)
  for g in range(n_genes):
    if drawn[g] / n > 0:
      rescale[g] = control_counts[g] / (drawn[g] / n)
  one = np.float32(1.0)
  for c in range(n):  # cells outer: the [n, G] inputs are read in their memory order
    for g in range(n_genes):
      f = fold[c, g]
      mean = counts[c, g] * rescale[g]
      if f < one:
        mean = mean * np.float64(f)
      else:  # (fold - 1) in float32, as NumPy computes `fold - 1.0` for a float32 array
        mean = mean + np.float64(f - one) * (scale[c] * control_counts[g])
      b = np.floor(mean)
      base[c, g] = b
      frac[c, g] = mean - b
      if mean != b:
        key = np.uint64(np.int64(order_keys[c, g] * _KEY_SCALE)) >> np.uint64(drop)
        packed[g, lengths[g]] = (key << np.uint64(bits)) | np.uint64(c)
        lengths[g] += 1
  for g in range(n_genes):
    packed[g, lengths[g]:] = empty
  return lengths


@numba.njit(nogil=True, cache=True)
def _systematic_sample(packed, lengths, base, frac, order_keys, start, bits, out):
  """Cells in their random order per gene (the sorted `packed`) round up where the cumulative
  fractional parts plus the offset cross a whole number (`_systematic_round`)."""
  n_genes = packed.shape[0]
  mask = np.uint64((1 << bits) - 1)
  for g in range(n_genes):
    m = lengths[g]
    for c in range(packed.shape[1]):
      out[c, g] = base[c, g]
    cells = np.empty(m, np.int64)
    tied = False
    for i in range(m):
      cells[i] = np.int64(packed[g, i] & mask)
      if i and (packed[g, i] >> np.uint64(bits)) == (packed[g, i - 1] >> np.uint64(bits)):
        tied = True
    if tied:  # two keys alike in their kept bits: order those cells by their whole keys
      cells = cells[np.argsort(np.array([order_keys[c, g] for c in cells]), kind="mergesort")]
    cumulative = 0.0
    before = np.floor(start[g])
    for i in range(m):
      c = cells[i]
      cumulative += frac[c, g]
      step = np.floor(cumulative + start[g])
      out[c, g] = base[c, g] + (step - before)
      before = step


@numba.njit(nogil=True, cache=True)
def count_nonzero_rows(x, lo, hi, nnz):
  """nnz[r] = non-zero values of rows [lo, hi) of x [n, G]."""
  for r in range(lo, hi):
    k = 0
    for v in x[r]:
      if v != 0.0:
        k += 1
    nnz[r] = k


@numba.njit(nogil=True, cache=True)
def log1p_csr_rows(x, log1p_table, factor, indptr, lo, hi, data, indices, raw):
  """Rows [lo, hi) of x [n, G] (counts) into CSR slots: data = log1p(count / factor[row]),
  looked up in `log1p_table` (`count_log1p.log1p_table`); a count beyond it is left scaled but
  not log1p'd, and marked in `raw`."""
  size = log1p_table.shape[1]
  for r in range(lo, hi):
    k = indptr[r]
    row = x[r]
    for g in range(row.shape[0]):
      v = row[g]
      if v != 0.0:
        if v < size:
          data[k] = log1p_table[r, np.int64(v)]
          raw[k] = False
        else:
          data[k] = np.float32(v) / factor[r]
          raw[k] = True
        indices[k] = g
        k += 1
