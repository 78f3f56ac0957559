"""The compiled passes of the ranking against plain NumPy: the regrouping and the sort-and-sum."""

import numpy as np
import pytest
import scipy.sparse as sp

from vccjax.data import count_log1p
from vccjax.metrics import keys_by_gene, ranksum, ranksum_batch


def reference_sums(rows, *, label_bits, base, n_groups):
  """`gene_sums` by definition: each group's values against the control's, from a sorted row."""
  pad = np.iinfo(rows.dtype).max
  out = np.zeros((5, len(rows), n_groups))
  for r, row in enumerate(rows):
    keys = np.sort(row[row != pad]).astype(np.uint64)
    labels = (keys & np.uint64((1 << label_bits) - 1)).astype(np.int64)
    bits = (keys >> np.uint64(label_bits)) + np.uint64(base)
    values = bits.astype(np.uint32).view(np.float32).astype(np.float64)
    control = bits[labels == 0]
    for g in range(n_groups):
      mine = bits[labels == g]
      out[0, r, g] = len(mine)
      if g == 0:  # ranks among the controls, ties broken by order
        out[1, r, g] = sum(range(1, len(mine) + 1))
        _, t = np.unique(mine, return_counts=True)
      else:
        out[1, r, g] = np.searchsorted(np.sort(control), mine, "right").sum()
        out[2, r, g] = (mine[:, None] == control[None, :]).sum()
        pooled = np.concatenate([control, mine])
        values_here, t = np.unique(pooled, return_counts=True)
        _, t_control = np.unique(control, return_counts=True)
        # what p's values add to the control's tie terms
        out[3, r, g] = (t ** 3 - t).sum() - (t_control ** 3 - t_control).sum()
        t = None
      if t is not None:
        out[3, r, g] = (t ** 3 - t).sum()
      for v in values[labels == g]:  # in sorted order
        out[4, r, g] += v
  return out


def keys_of(values, labels, *, label_bits, base, dtype):
  bits = np.asarray(values, np.float32).view(np.uint32).astype(dtype)
  return ((bits - dtype(base)) << dtype(label_bits)) | np.asarray(labels, dtype)


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_gene_sums_equal_the_definition(dtype):
  rng = np.random.default_rng(0)
  n_groups, label_bits, width = 5, 3, 300
  base = int(np.float32(0.01).view(np.uint32)) - 64 if dtype is np.uint32 else 0
  values = np.round(rng.gamma(1.0, 1.0, (8, width)) + 0.01, 2)  # many ties
  values[1] = 0.5  # every value equal
  values[2, :250] = 1.25  # a run longer than a bucket's insertion sort
  values[6] = rng.uniform(0.5, 3.0, width)  # no ties: small buckets, one insertion pass
  values[7] = rng.uniform(1.0, 1.01, width)  # skewed: distinct values in a few large buckets
  values[7, 0] = 14.0
  labels = rng.integers(0, n_groups, (8, width))
  rows = keys_of(values, labels, label_bits=label_bits, base=base, dtype=dtype)
  pad = np.iinfo(dtype).max
  rows[3, ::3] = pad  # padding anywhere (stored zeros)
  rows[4] = pad  # an empty gene
  rows[5, 1:] = pad  # a single value
  # Each gene's keys split into three pieces of uneven sizes (one piece empty for gene 0),
  # laid out as the scorer's chunks are: every piece's genes one after the other.
  bounds = np.array([[0, 0, 120, 300]] + [[0, 10, 200, 300]] * 7)
  keys, starts = [], np.zeros((3, 9), np.int64)
  for p in range(3):
    for g in range(8):
      starts[p, g] = sum(len(k) for k in keys)
      keys.append(rows[g, bounds[g, p]:bounds[g, p + 1]])
    starts[p, 8] = sum(len(k) for k in keys)
  keys = np.concatenate(keys)
  given = keys.copy()
  genes = np.array([3, 0, 7, 5, 1, 6, 4, 2])  # any order
  sums = ranksum_batch.gene_sums(keys, starts, genes, label_bits=label_bits, n_groups=n_groups,
                                 base=base)
  np.testing.assert_array_equal(keys, given)
  expected = reference_sums(rows[genes], label_bits=label_bits, base=base, n_groups=n_groups)
  for got, want in zip(sums, expected):
    np.testing.assert_array_equal(got, want)


def test_regrouped_keys_equal_numpy_and_scipy():
  rng = np.random.default_rng(1)
  x = sp.random(300, 1100, density=0.3, random_state=2, format="csr", dtype=np.float32)
  x.data = np.log1p(x.data * 50).astype(np.float32)
  x.data[::17] = 0.0  # stored zeros, and a negative zero
  x.data[5] = -0.0
  group = rng.integers(0, 6, 300)
  key_format = ranksum.KeyFormat.for_values(low=float(x.data[x.data > 0].min()),
                                            high=float(x.data.max()), n_groups=6)
  pieces = ranksum.gene_pieces(x, group=group, key_format=key_format)
  keys = keys_of(x.data, np.repeat(group, np.diff(x.indptr)), label_bits=key_format.label_bits,
                 base=key_format.base, dtype=key_format.dtype)
  keys[x.data <= 0] = np.iinfo(key_format.dtype).max
  by_gene = sp.csr_matrix((keys, x.indices, x.indptr), shape=x.shape).tocsc()
  np.testing.assert_array_equal(pieces.colptr, by_gene.indptr)
  np.testing.assert_array_equal(pieces.keys, by_gene.data)
  # unsorted columns within rows are sorted first: the same pieces
  shuffled = x.copy()
  for r in range(0, 300, 7):
    lo, hi = shuffled.indptr[r], shuffled.indptr[r + 1]
    order = rng.permutation(hi - lo)
    shuffled.indices[lo:hi] = shuffled.indices[lo:hi][order]
    shuffled.data[lo:hi] = shuffled.data[lo:hi][order]
  shuffled.has_sorted_indices = False
  again = ranksum.gene_pieces(shuffled, group=group, key_format=key_format)
  np.testing.assert_array_equal(again.keys, pieces.keys)


def test_regroup_reports_the_positive_range():
  data = np.array([0.0, 2.0, -1.0, 0.5, 3.0], np.float32)
  indptr = np.array([0, 2, 5])
  indices = np.array([0, 3, 1, 2, 3], np.int32)
  out, colptr = np.empty(5, np.uint32), np.empty(5, np.int64)
  low, high = keys_by_gene.regroup(data, indices, indptr, np.array([0, 1]),
                                   base=0, label_bits=2, n_genes=4, out=out, colptr=colptr)
  assert (low, high) == (int(np.float32(0.5).view(np.uint32)), int(np.float32(3).view(np.uint32)))
  np.testing.assert_array_equal(colptr, [0, 1, 2, 3, 5])
  unsorted = np.array([0, 3, 2, 1, 3], np.int32)  # row 1's columns out of order
  assert keys_by_gene.regroup(data, unsorted, indptr, np.array([0, 1]), base=0,
                              label_bits=2, n_genes=4, out=out, colptr=colptr) is None


def test_row_views_are_the_rows_without_copies():
  rng = np.random.default_rng(5)
  x = sp.random(23, 9, density=0.4, format="csr", dtype=np.float32, random_state=rng)
  x[4] = 0  # an empty row
  x.eliminate_zeros()
  starts, stacked = [], []
  for start, view in ranksum.row_views(x, 5):
    assert np.shares_memory(view.data, x.data) and np.shares_memory(view.indices, x.indices)
    np.testing.assert_array_equal(view.toarray(), x[start:start + 5].toarray())
    starts.append(start)
    stacked.append(view)
  assert starts == [0, 5, 10, 15, 20]
  np.testing.assert_array_equal(sp.vstack(stacked).toarray(), x.toarray())


def test_ranking_refuses_negative_values():
  with pytest.raises(ValueError, match="non-negative"):
    ranksum.rank_sums(log1p_expr=sp.csr_matrix(np.array([[0.5, -1.0]], np.float32)),
                      group=np.array([0]), n_groups=1)


@pytest.mark.parametrize("n_groups", [6, 1 << 20])  # 32-bit and 64-bit keys
def test_counts_scaled_as_regrouped_equal_scaled_first(n_groups):
  """Keys of counts scaled inside the regrouping are those of `count_log1p.scale_rows`'s values:
  table entries, counts past the table, fractional counts, stored zeros."""
  rng = np.random.default_rng(3)
  x = sp.random(200, 700, density=0.3, random_state=4, format="csr", dtype=np.float32)
  x.data = np.floor(x.data * 40).astype(np.float32)  # 0..39, stored zeros among them
  x.data[::31] = 300 + rng.integers(0, 5000, len(x.data[::31]))  # past the table
  x.data[5::97] += np.float32(0.0004)  # fractional parts cell-eval tolerates as counts
  factor = rng.uniform(0.3, 3.0, 200).astype(np.float32)
  table = count_log1p.log1p_table(factor)
  scaled = x.copy()
  count_log1p.scale_rows(scaled.data, scaled.indptr, factor=factor, table=table)
  group = rng.integers(0, 6, 200)
  key_format = ranksum.KeyFormat.for_values(low=float(scaled.data[scaled.data > 0].min()),
                                            high=float(scaled.data.max()), n_groups=n_groups)
  want = ranksum.gene_pieces(scaled, group=group, key_format=key_format)
  got = ranksum.gene_pieces(x, group=group, key_format=key_format, scaling=(factor, table))
  np.testing.assert_array_equal(got.colptr, want.colptr)
  np.testing.assert_array_equal(got.keys, want.keys)
