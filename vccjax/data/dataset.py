"""A VCC-layout file prepared for training: scaling, HVGs, groups, pseudobulk effects.

`load_dataset` makes three streaming passes over the counts (`count_passes`: compiled, reading
the next row range while computing on the current one), so a 220k x 18,080 file is never
densified and is read backed when it is large: the first reads only the stored values and finds
each cell's total and the file's median total (the VCC scaling); the second accumulates per-gene
log1p moments (for HVGs), the control mean of each context (batch x cell type) and each target's
pseudobulk effect against its cells' own context controls; the third computes the HVG log1p
matrix, the model's input, and keeps it in memory, or, with `stream=True`, writes it to a file
on local disk whose rows are read a few cells at a time when asked for
(`streaming.StreamedExpression`). The HVGs need the moments, and the moments the median: three
passes. With `cache=True` the prepared arrays are kept on disk per file and settings
(`prepared_cache`), and a later load of the same file reads them instead of making the passes."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from vccjax.data import count_log1p
from vccjax.data import count_passes
from vccjax.data import io
from vccjax.data import normalize
from vccjax.data import prepared_cache
from vccjax.data import streaming
from vccjax.data import targets as targets_lib
from vccjax.errors import InputError

# Above this many stored values, X is read backed (on disk) rather than loaded (~1.6 GB CSR).
_BACKED_ABOVE_NNZ = 200_000_000


@dataclasses.dataclass
class PerturbDataset:
  """A perturbation screen in memory-bounded form.

  Attributes:
    path: the source file.
    adata: the AnnData (X possibly backed on disk); only `vccjax.data` touches it.
    labels: per-cell target gene / batch / cell type and gene names.
    totals: [cells] total counts per cell.
    target_sum: the file's median total (VCC scaling target).
    hvg: [n_hvg] indices of the model's input genes (sorted).
    hvg_log1p: [cells, n_hvg] float32 VCC-scaled expression of the input genes: a dense array,
      or a `StreamedExpression` (indexed by cells like one) when loaded with `stream=True`.
    context: [cells] int context id (batch x cell type) per cell.
    context_names: [contexts] names of the contexts.
    control_mean: [contexts, genes] float32 mean log1p expression of each context's controls.
    targets: sorted perturbed targets.
    target_effect: [targets, genes] float32 pseudobulk effect of each target: mean over its
      cells of (log1p expression - its context's control mean).
    target_lfc: [targets, genes] float32 natural-log fold change of mean normalised counts
      against the same context-matched controls (with a pseudocount): what the models predict.
    target_n_cells: [targets] cells per target.
    target_pseudobulk: [targets, genes] float32 mean log1p expression of each target's cells.
    control_pseudobulk: [genes] float32 mean log1p expression of all control cells.
    control_counts: [genes] float32 mean normalised counts (expm1 of log1p) of all controls.
    context_control_counts: [contexts, genes] float32 the same per context (shrunk as
      `control_mean`).
    gene_mean, gene_var: [genes] log1p moments over all cells.
    prepared_from_cache: whether the arrays were read from the prepared-data cache.
    cache_entry: (cache directory, key) of this file's prepared-data entry, or None uncached.
  """
  path: str
  adata: object
  labels: io.CellLabels
  totals: np.ndarray
  target_sum: float
  hvg: np.ndarray
  hvg_log1p: np.ndarray | streaming.StreamedExpression
  context: np.ndarray
  context_names: list[str]
  control_mean: np.ndarray
  targets: list[str]
  target_effect: np.ndarray
  target_lfc: np.ndarray
  target_n_cells: np.ndarray
  target_pseudobulk: np.ndarray
  control_pseudobulk: np.ndarray
  control_counts: np.ndarray
  context_control_counts: np.ndarray
  gene_mean: np.ndarray
  gene_var: np.ndarray
  lfc_pseudocount: float = 1.0
  prepared_from_cache: bool = False
  cache_entry: tuple[str, str] | None = None

  @property
  def gene_names(self) -> np.ndarray:
    return self.labels.gene_names

  @property
  def n_genes(self) -> int:
    return len(self.labels.gene_names)

  @property
  def control_label(self) -> str:
    return self.labels.control_label

  def cells_of(self, target: str) -> np.ndarray:
    """Indices of the cells of `target` (or of the control label)."""
    return np.flatnonzero(self.labels.target_gene == target)

  def log1p_rows(self, rows: np.ndarray, *, genes: np.ndarray | None = None) -> np.ndarray:
    """VCC-scaled expression of cells `rows`: [len(rows), genes] dense float32."""
    rows = np.asarray(rows, dtype=np.int64)
    counts = io.read_rows(self.adata, rows)
    expr = normalize.log1p_normalize(counts, target_sum=self.target_sum, totals=self.totals[rows])
    if genes is not None:
      expr = expr[:, genes]
    return expr.toarray()

  @property
  def context_cell_types(self) -> np.ndarray:
    """[contexts] the cell type of each context (the last part of its name, batch|cell type)."""
    return np.array([name.split("|")[-1] for name in self.context_names])

  def cells_lfc(self, cells: np.ndarray) -> np.ndarray:
    """[genes] log fold change of some perturbed cells, as `target_lfc` (few-shot targets).

    Mean normalised counts of `cells` against the controls of their contexts, in the cells'
    context proportions, with the same pseudocount.
    """
    cells = np.asarray(cells, dtype=np.int64)
    counts = self.count_rows(cells) / (self.totals[cells] / self.target_sum)[:, None]
    share = np.bincount(self.context[cells], minlength=len(self.context_names)) / len(cells)
    matched = share @ self.context_control_counts
    return np.log((counts.mean(0) + self.lfc_pseudocount) /
                  (matched + self.lfc_pseudocount)).astype(np.float32)

  def count_rows(self, rows: np.ndarray) -> np.ndarray:
    """Raw counts of cells `rows`: [len(rows), genes] dense float64."""
    return io.read_dense_rows(self.adata, rows)

  def target_index(self) -> dict[str, int]:
    return {t: i for i, t in enumerate(self.targets)}

  def derived(self, name: str, compute) -> np.ndarray:
    """`compute()` (an array computed from this dataset), kept in the prepared-data cache.

    name: says what it is and every parameter it depends on (e.g. "control_pca_64").
    """
    if self.cache_entry is None:
      return compute()
    cache_dir, key = self.cache_entry
    cached = prepared_cache.load(cache_dir, f"{key}--{name}")
    if cached is not None:
      return cached["values"]
    values = compute()
    prepared_cache.save(cache_dir, f"{key}--{name}", {"values": values}, {})
    return values


def _contexts(labels: io.CellLabels) -> tuple[np.ndarray, list[str]]:
  """Integer context per cell: batch x cell type (whichever exist), names in sorted order."""
  parts = [p for p in (labels.batch, labels.cell_type) if p is not None]
  if not parts:
    return np.zeros(len(labels.target_gene), np.int32), ["all"]
  keys = parts[0].astype(object)
  for p in parts[1:]:
    keys = keys + "|" + p.astype(object)
  names, context = np.unique(keys.astype(str), return_inverse=True)
  return context.astype(np.int32), names.tolist()


def _totals_pass(adata, values_per_range: int) -> np.ndarray:
  """[cells] total count of each cell (reads the values only, not their genes)."""
  totals = np.empty(adata.n_obs, np.float64)
  for start, stop, data, _, indptr in count_passes.csr_ranges(
      adata, with_indices=False, values_per_range=values_per_range):
    if not count_passes.row_totals(data, indptr, totals[start:stop]):
      raise ValueError("negative or non-finite values in X")
  return totals


def load_dataset(path: str, *, control_label: str = io.CONTROL_LABEL, n_hvg: int = 2000,
                 backed: bool | str = "auto", stream: bool = False,
                 stream_dir: str | None = None,
                 values_per_range: int = count_passes.VALUES_PER_RANGE,
                 lfc_pseudocount: float = 1.0, cache: bool = False,
                 cache_dir: str | None = None, verbose: bool = False) -> PerturbDataset:
  """Reads a VCC-layout file of raw counts and prepares it for training and evaluation.

  Args:
    path: `.h5ad` with raw counts in X and obs['target_gene'].
    control_label: label of control cells in obs['target_gene'].
    n_hvg: number of highly variable genes for the model input (0 or >= genes: all genes).
      Targets measured in the panel are always included.
    backed: read X on disk (True), in memory (False) or decide by size ("auto").
    stream: do not keep `hvg_log1p` (cells x n_hvg float32) in memory: write it once to a
      temporary file on local disk and read each request's cells from there, keeping only the
      control cells' rows in memory. For files whose input-gene matrix does not fit in memory;
      use with a backed X. (Not cached.)
    stream_dir: directory of that file (local disk with cells x n_hvg x 4 bytes free; default
      `$TMPDIR`).
    values_per_range: stored values per streamed row range (bounds memory; the arrays do not
      depend on it).
    lfc_pseudocount: added to mean normalised counts (UMIs at the median depth) before the log
      fold changes `target_lfc`, so that rarely detected genes get small, not noisy, changes.
    cache: reuse the prepared arrays of an earlier call with the same file and settings, or
      keep them for the next (`vccjax.data.prepared_cache`): identical arrays, no pass over X.
    cache_dir: where the cache lives (default `prepared_cache.default_dir()`).
  """
  path = os.fspath(path)
  log = print if verbose else (lambda *a, **k: None)
  t0 = time.perf_counter()
  adata, backed = _open(path, backed)
  labels = io.read_labels(adata, path=path, control_label=control_label)
  log(f"[data] {path}: {adata.n_obs:,} cells x {adata.n_vars:,} genes, "
      f"{len(labels.targets)} targets, {'backed' if backed else 'in memory'}")
  key = None
  if cache and not stream:
    cache_dir = cache_dir or prepared_cache.default_dir()
    key = prepared_cache.entry_key(path, dict(control_label=control_label, n_hvg=n_hvg,
                                              lfc_pseudocount=lfc_pseudocount))
    prepared = prepared_cache.load(cache_dir, key, log=print)
    if prepared is not None:
      log(f"[data] prepared arrays from the cache {os.path.join(cache_dir, key)} "
          f"({time.perf_counter() - t0:.1f}s)")
      return PerturbDataset(path=path, adata=adata, labels=labels, **prepared,
                            lfc_pseudocount=lfc_pseudocount, prepared_from_cache=True,
                            cache_entry=(cache_dir, key))
  _check_counts(adata, path)
  prepared = _prepare(adata, labels, path=path, n_hvg=n_hvg, stream=stream, stream_dir=stream_dir,
                      values_per_range=values_per_range, lfc_pseudocount=lfc_pseudocount)
  log(f"[data] median total {prepared['target_sum']:,.0f} UMI, {len(prepared['hvg'])} input "
      f"genes, {len(prepared['context_names'])} contexts" +
      (", input genes streamed" if stream else "") + f" ({time.perf_counter() - t0:.1f}s)")
  if key is not None:
    scalars = {k: prepared[k] for k in _SCALARS}
    prepared_cache.save(cache_dir, key, {k: v for k, v in prepared.items() if k not in _SCALARS},
                        {k: (float(v) if k == "target_sum" else list(v))
                         for k, v in scalars.items()})
  return PerturbDataset(path=path, adata=adata, labels=labels, **prepared,
                        lfc_pseudocount=lfc_pseudocount,
                        cache_entry=None if key is None else (cache_dir, key))


_SCALARS = ("target_sum", "context_names", "targets")  # kept in the cache's manifest


def _open(path: str, backed: bool | str):
  """(AnnData, backed): X on disk when asked, or when "auto" and it has many stored values."""
  if backed == "auto":
    adata = io.read_h5ad(path, backed=True)
    backed = _stored_values(adata) > _BACKED_ABOVE_NNZ
    if not backed:
      adata.file.close()
      adata = io.read_h5ad(path)
    return adata, backed
  return io.read_h5ad(path, backed=bool(backed)), bool(backed)


def _prepare(adata, labels, *, path, n_hvg, stream, stream_dir, values_per_range,
             lfc_pseudocount) -> dict:
  """The passes over the counts: every PerturbDataset field but the file and its labels."""
  try:
    totals = _totals_pass(adata, values_per_range)
  except ValueError as e:
    raise InputError(f"{path} X", str(e), "X must hold raw non-negative counts") from e
  target_sum = normalize.median_target_sum(totals)
  context, context_names = _contexts(labels)
  targets = labels.targets
  t_index = {t: i for i, t in enumerate(targets)}
  # Group id per cell: targets first, then one control group per context.
  is_control = labels.is_control
  group = np.where(is_control, len(targets) + context,
                   np.array([t_index.get(t, 0) for t in labels.target_gene]))
  n_groups = len(targets) + len(context_names)
  moments, log1p_sums, count_sums = _group_pass(adata, group, n_groups, totals, target_sum,
                                                values_per_range)
  counts = np.bincount(group, minlength=n_groups).astype(np.float64)
  cells_per_context = np.zeros((len(targets), len(context_names)))
  np.add.at(cells_per_context, (group[~is_control], context[~is_control]), 1.0)
  control_mean, target_effect = _matched_effect(log1p_sums, counts, cells_per_context)
  context_control_counts, count_effect = _matched_effect(count_sums, counts, cells_per_context)
  target_n = counts[:len(targets)]
  target_counts = count_sums[:len(targets)] / np.maximum(target_n, 1)[:, None]
  matched = target_counts - count_effect  # the matched controls' mean normalised counts
  target_lfc = np.log((target_counts + lfc_pseudocount) / (matched + lfc_pseudocount))
  gene_pos = {g: i for i, g in enumerate(labels.gene_names)}
  measured_targets = [gene_pos[g] for t in targets for g in targets_lib.genes_of(t)
                      if g in gene_pos]
  hvg = normalize.select_hvg(moments.mean, moments.var, n_hvg if n_hvg > 0 else adata.n_vars,
                             always_include=np.array(measured_targets, dtype=np.int64))
  blocks = _hvg_blocks(adata, hvg, totals, target_sum, values_per_range)
  if stream:
    hvg_log1p = streaming.StreamedExpression.write(
        blocks=blocks, shape=(adata.n_obs, len(hvg)), cached_cells=np.flatnonzero(is_control),
        directory=stream_dir)
  else:
    hvg_log1p = np.empty((adata.n_obs, len(hvg)), np.float32)
    for rows, values in blocks:
      hvg_log1p[rows] = values
  n_controls = max(counts[len(targets):].sum(), 1)
  return dict(
      totals=totals, target_sum=target_sum, hvg=hvg, hvg_log1p=hvg_log1p, context=context,
      context_names=context_names, control_mean=control_mean.astype(np.float32),
      targets=targets, target_effect=target_effect.astype(np.float32),
      target_lfc=target_lfc.astype(np.float32), target_n_cells=target_n.astype(np.int64),
      target_pseudobulk=(log1p_sums[:len(targets)] / np.maximum(target_n, 1)[:, None]
                         ).astype(np.float32),
      control_pseudobulk=(log1p_sums[len(targets):].sum(0) / n_controls).astype(np.float32),
      context_control_counts=context_control_counts.astype(np.float32),
      control_counts=(count_sums[len(targets):].sum(0) / n_controls).astype(np.float32),
      gene_mean=moments.mean, gene_var=moments.var)


def _stored_values(adata) -> int:
  x = adata.X
  if hasattr(x, "group") and "data" in x.group:  # backed sparse
    return int(x.group["data"].shape[0])
  return int(np.prod(adata.shape))


def _check_counts(adata, path: str) -> None:
  """Training data must be raw counts: the VCC scaling is applied here, once."""
  ranges = count_passes.csr_ranges(adata, with_indices=False, values_per_range=2**21)
  first = next(ranges, (None, None, np.zeros(0)))[2]  # the first ~2 million stored values
  ranges.close()
  if normalize.has_fractional_values(first):
    raise InputError(f"{path} X", "values are not integer counts (looks normalised/log1p)",
                     "give the raw UMI counts (e.g. adata.layers['counts'] or adata.raw)")


def _group_pass(adata, group, n_groups, totals, target_sum, values_per_range):
  """One streaming pass: log1p gene moments, and per-group sums of log1p and of normalised counts."""
  moments = normalize.GeneMoments(adata.n_vars)
  log1p_sums = np.zeros((n_groups, adata.n_vars), np.float64)
  count_sums = np.zeros((n_groups, adata.n_vars), np.float64)
  deferred = np.empty(0, np.int64)
  # Last range first: the totals pass ended there, so that part of the file is still cached.
  for start, stop, data, indices, indptr in count_passes.csr_ranges(
      adata, values_per_range=values_per_range, last_first=True):
    if len(data) > len(deferred):
      deferred = np.empty(len(data), np.int64)
    factor = normalize.size_factors(totals[start:stop], target_sum=target_sum)
    sums = (moments.sum, moments.sum_sq, log1p_sums, count_sums)
    log1p_table = count_log1p.log1p_table(factor)
    n = count_passes.add_group_sums(data, indices, indptr, log1p_table, np.expm1(log1p_table),
                                    group[start:stop], *sums, deferred)
    if n:  # counts beyond the tables: NumPy's log1p and expm1 (as scanpy's)
      at = deferred[:n]
      rows = count_passes.row_of_values(indptr, at)
      log1p = np.log1p(data[at] / factor[rows])
      count_passes.add_values(log1p, np.expm1(log1p), indices[at], group[start:stop][rows],
                              *sums)
  moments.n = adata.n_obs
  return moments, log1p_sums, count_sums


def _matched_effect(sums, counts, cells_per_context, *, prior_cells: float = 25.0):
  """Per-context control means and each target's effect against its own contexts' controls.

  sums: [targets + contexts, genes] per-group sums (targets first); counts: [groups] cells.
  A context with few controls (the real VCC subset has ~2 per batch) would make noisy effects:
  its control mean is shrunk towards the overall one with `prior_cells` pseudo-cells (a context
  without controls gets the overall mean).

  Returns (control_mean [contexts, genes], effect [targets, genes]): effect of t = mean over its
  cells of (value - control_mean[cell's context]).
  """
  n_t = cells_per_context.shape[0]
  ctrl_sums, ctrl_counts = sums[n_t:], counts[n_t:]
  overall = ctrl_sums.sum(0) / max(ctrl_counts.sum(), 1)
  control_mean = (ctrl_sums + prior_cells * overall) / (ctrl_counts + prior_cells)[:, None]
  effect = (sums[:n_t] - cells_per_context @ control_mean) / np.maximum(counts[:n_t], 1)[:, None]
  return control_mean, effect


def _hvg_blocks(adata, hvg, totals, target_sum, values_per_range):
  """(rows, [rows, n_hvg] float32 VCC-scaled input-gene expression) per row range, in order."""
  column = np.full(adata.n_vars, -1, np.int64)
  column[hvg] = np.arange(len(hvg))
  deferred = np.empty(0, np.int64)
  for start, stop, data, indices, indptr in count_passes.csr_ranges(
      adata, values_per_range=values_per_range):
    if len(data) > len(deferred):
      deferred = np.empty(len(data), np.int64)
    # Scaled with each cell's total over all genes.
    factor = normalize.size_factors(totals[start:stop], target_sum=target_sum)
    block = np.zeros((stop - start, len(hvg)), np.float32)
    n = count_passes.scatter_columns(data, indices, indptr, count_log1p.log1p_table(factor),
                                     column, block, deferred)
    if n:
      at = deferred[:n]
      rows = count_passes.row_of_values(indptr, at)
      block[rows, column[indices[at]]] = np.log1p(data[at] / factor[rows])
    yield slice(start, stop), block
