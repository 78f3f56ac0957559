"""Checks an `.h5ad` file for use as training data, ground truth or a VCC submission.

Usage:
  python -m vccjax.data.validate FILE [--genes gene_names.csv] [--pert-counts CSV]
      [--role train|truth|submission] [--expect counts|log1p] [--control-label L] [--backed]

Prints a summary and exits 0, or prints one line naming the file, the problem and the fix and exits
1. The checks mirror what `cell-eval prep` / `cell-eval run` (0.6.6) reject, plus what they let
through silently but score wrongly (mixed count/log1p rows, NaN, target cell counts that disagree
with `pert_counts`). `X` is read in row chunks, never densified whole, so files of the full VCC
shape (~220k cells x 18,080 genes) fit in memory; large files are read backed (on disk).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import warnings

import anndata as ad
import numpy as np
import pandas as pd

from vccjax.data import io
from vccjax.data.normalize import LOG1P_MAX
from vccjax.errors import InputError, cli_exit_on_input_error

ROLES = ("train", "truth", "submission")
SCALES = ("counts", "log1p")
MAX_SUBMISSION_CELLS = 200_000  # cell-eval 0.6.6 prep's MAX_CELL_DIM: it rejects larger files.
FRACTION_EPSILON = 1e-3  # cell-eval's test for a non-integer value.
BACKED_MIN_BYTES = 1 << 30  # Bigger files are read backed: X stays on disk.
CHUNK_VALUES = 1 << 24  # Row chunks of ~16M matrix entries (~64 MB dense float32).
MANY_TARGETS = 12  # More targets than this are summarised, not listed.


@dataclasses.dataclass(frozen=True)
class Summary:
  """What a valid file holds.

  Attributes:
    path: the file checked.
    role: "train", "truth" or "submission".
    n_cells, n_genes: shape of X.
    n_control: cells labelled `control_label`.
    target_counts: cells per perturbed target (controls excluded), most cells first.
    scale: "counts" (integer-valued) or "log1p" (fractional, in [0, 15)).
    max_value: the largest value in X.
    n_empty_cells: cells whose row of X is all zeros.
    n_batches: distinct obs['batch'] values, or None without that column.
    cell_types: distinct obs['cell_type'] values, or None without that column.
    n_listed_genes: length of the `--genes` list, or None without one.
    genes_in_order: whether the file's genes follow the list's order (None without a list).
    absent_listed_genes: listed genes the file lacks (a training file may; a submission not).
    backed: whether X was read from disk in chunks.
  """
  path: str
  role: str
  n_cells: int
  n_genes: int
  n_control: int
  control_label: str
  target_counts: dict[str, int]
  scale: str
  max_value: float
  n_empty_cells: int
  n_batches: int | None
  cell_types: tuple[str, ...] | None
  n_listed_genes: int | None
  genes_in_order: bool | None
  absent_listed_genes: tuple[str, ...]
  backed: bool

  def lines(self) -> list[str]:
    """The human-readable report, one fact per line."""
    out = [f"{self.path}: OK as {self.role} data",
           f"  cells: {self.n_cells:,} ({self.n_control:,} controls '{self.control_label}')",
           f"  genes: {self.n_genes:,}" + self._genes_note(),
           f"  targets: {self._targets_note()}",
           f"  scale: {self._scale_note()}"]
    if self.n_empty_cells:
      out.append(f"  empty cells (all-zero rows): {self.n_empty_cells:,}")
    if self.n_batches is not None:
      out.append(f"  batches: {self.n_batches:,}")
    if self.cell_types is not None:
      shown = ", ".join(self.cell_types[:5]) + (", ..." if len(self.cell_types) > 5 else "")
      out.append(f"  cell types: {len(self.cell_types):,} ({shown})")
    if self.absent_listed_genes:
      absent = self.absent_listed_genes
      out.append(f"warning: the file lacks {len(absent):,} of the {self.n_listed_genes:,} listed "
                 f"genes (e.g. {', '.join(absent[:3])}); a submission must carry every listed "
                 "gene, so `vccjax.predict` will stop naming them: train on data that measures "
                 "them")
    return out

  def _genes_note(self) -> str:
    if self.n_listed_genes is None:
      return ""
    order = "in order" if self.genes_in_order else "NOT in order"
    return (f"; {self.n_genes:,} of the {self.n_listed_genes:,} listed genes are present, "
            f"{order}")

  def _targets_note(self) -> str:
    counts = self.target_counts
    if not counts:
      return "0"
    values = np.array(list(counts.values()))
    if values.min() == values.max():
      sizes = f"{values[0]:,} cells each"
    else:
      sizes = f"{values.min():,}-{values.max():,} cells each, median {np.median(values):,.0f}"
    items = [f"{t} {n:,}" for t, n in counts.items()]
    if len(items) > MANY_TARGETS:  # Compact: the largest and smallest groups only.
      items = items[:3] + ["..."] + items[-3:]
    doubles = sum("+" in t for t in counts)
    kinds = f", {doubles:,} double (A+B)" if doubles else ""
    return f"{len(counts):,} ({sizes}{kinds}): " + ", ".join(items)

  def _scale_note(self) -> str:
    if self.scale == "counts":
      return f"raw counts (integer-valued, max {self.max_value:,.0f})"
    return f"log1p (fractional, max {self.max_value:.3f} < {LOG1P_MAX:g})"


def default_expect(role: str) -> str | None:
  """The scale a role needs: counts for train/truth; a submission may be either (not mixed)."""
  return None if role == "submission" else "counts"


def validate_file(path: str, *, role: str = "train", expect: str | None = None,
                  genes_path: str | None = None, pert_counts_path: str | None = None,
                  control_label: str = io.CONTROL_LABEL, backed: bool | None = None,
                  chunk_size: int | None = None) -> Summary:
  """Checks `path` for `role`; returns its Summary or raises InputError (file, problem, fix).

  Args:
    path: an `.h5ad` file in the VCC layout.
    role: "train", "truth" or "submission".
    expect: "counts", "log1p" or None (either, not mixed); defaults to `default_expect(role)`.
    genes_path: the VCC `gene_names.csv`; a submission or truth file must hold exactly these genes
      in this order, a training file a subset in this order.
    pert_counts_path: a VCC `pert_counts` csv; each target must have exactly `n_cells` cells.
    control_label: obs['target_gene'] of control cells.
    backed: read X from disk in chunks; None: only when the file is larger than 1 GiB.
    chunk_size: rows of X per chunk; None: ~16M matrix entries per chunk.
  """
  if role not in ROLES:
    raise InputError("--role", f"unknown role '{role}'", f"use one of {ROLES}")
  expect = expect or default_expect(role)
  if expect not in (None, *SCALES):
    raise InputError("--expect", f"unknown scale '{expect}'", f"use one of {SCALES}")
  _check_not_empty(path)
  if backed is None:  # A missing file is read_h5ad's to report.
    backed = os.path.isfile(path) and os.path.getsize(path) > BACKED_MIN_BYTES
  adata = io.read_h5ad(path, backed=backed)
  try:
    return _validate_adata(adata, path=path, role=role, expect=expect, genes_path=genes_path,
                           pert_counts_path=pert_counts_path, control_label=control_label,
                           backed=backed, chunk_size=chunk_size)
  finally:
    if backed:
      adata.file.close()


def _validate_adata(adata: ad.AnnData, *, path, role, expect, genes_path, pert_counts_path,
                    control_label, backed, chunk_size) -> Summary:
  """The checks, cheapest first: shape, labels, genes, cell counts, then a pass over X."""
  if adata.n_obs == 0 or adata.n_vars == 0:
    raise InputError(path, f"X has no cells or no genes (shape {adata.n_obs} x {adata.n_vars})",
                     "write the cells and genes into X")
  labels = io.read_labels(adata, path=path, control_label=control_label)
  _check_target_labels(adata, path=path)
  n_listed, in_order, absent = None, None, ()
  if genes_path is not None:
    listed = _read_table(io.read_gene_list, genes_path)
    n_listed = len(listed)
    in_order = _check_genes(labels.gene_names, listed, path=path, genes_path=genes_path,
                            exact=role != "train")
    present = set(labels.gene_names)
    absent = tuple(g for g in listed if g not in present)
  counts = _cells_per_target(labels)
  if pert_counts_path is not None:
    _check_pert_counts(counts, _read_table(io.read_pert_counts, pert_counts_path),
                       path=path, pert_counts_path=pert_counts_path, control_label=control_label)
  if role == "submission" and adata.n_obs > MAX_SUBMISSION_CELLS:
    raise InputError(path, f"{adata.n_obs:,} cells; cell-eval prep rejects more than "
                     f"{MAX_SUBMISSION_CELLS:,}", "predict fewer cells per target")
  scan = _scan_values(adata, path=path, expect=expect, chunk_size=chunk_size)
  return Summary(
      path=path, role=role, n_cells=adata.n_obs, n_genes=adata.n_vars,
      n_control=int(labels.is_control.sum()), control_label=control_label,
      target_counts={str(t): int(n) for t, n in counts.items()},
      scale=scan.scale, max_value=scan.max_value, n_empty_cells=scan.n_empty_cells,
      n_batches=None if labels.batch is None else len(set(labels.batch.tolist())),
      cell_types=None if labels.cell_type is None else tuple(sorted(set(labels.cell_type))),
      n_listed_genes=n_listed, genes_in_order=in_order, absent_listed_genes=absent,
      backed=backed)


def _cells_per_target(labels: io.CellLabels) -> pd.Series:
  """Cells per perturbed target, most cells first (ties by name, for a stable report)."""
  counts = pd.Series(labels.target_gene[~labels.is_control]).value_counts()
  return counts.iloc[np.lexsort((counts.index.to_numpy(), -counts.to_numpy()))]


def _check_not_empty(path: str) -> None:
  if os.path.isfile(path) and os.path.getsize(path) == 0:
    raise InputError(path, "file is empty (0 bytes)", "re-write or re-download the file")


def _read_table(reader, path: str):
  """Runs an `io` csv reader, turning pandas' parse errors into InputError."""
  try:
    return reader(path)
  except InputError:
    raise
  except (ValueError, TypeError, UnicodeDecodeError, pd.errors.ParserError) as e:
    problem = f"unreadable csv ({type(e).__name__}: {e})"
    raise InputError(path, problem, "use the VCC csv layout") from e


def _check_target_labels(adata: ad.AnnData, *, path: str) -> None:
  """Every cell needs a target: a missing label would become a perturbation called 'nan'."""
  labels = adata.obs[io.TARGET_COLUMN]
  missing = labels.isna().to_numpy() | (labels.astype(str).str.strip() == "").to_numpy()
  if missing.any():
    row = int(np.flatnonzero(missing)[0])
    raise InputError(path, f"{missing.sum():,} cells have no obs['{io.TARGET_COLUMN}'] label "
                     f"(first: row {row}, cell '{adata.obs_names[row]}')",
                     "label every cell with its target gene or the control label")


def _check_genes(gene_names: np.ndarray, listed: list[str], *, path: str, genes_path: str,
                 exact: bool) -> bool:
  """Checks the file's genes against the list; returns True (in order) or raises InputError."""
  position = {g: i for i, g in enumerate(listed)}  # unique: io.read_gene_list checks
  unknown = [g for g in gene_names if g not in position]
  if unknown:
    raise InputError(path, f"{len(unknown):,} of its {len(gene_names):,} genes are not in "
                     f"{genes_path}, e.g. {unknown[:3]}", "keep only the listed genes")
  if exact and len(gene_names) < len(listed):
    present = set(gene_names)
    absent = [g for g in listed if g not in present]
    raise InputError(path, f"lacks {len(absent):,} of the {len(listed):,} genes of {genes_path}, "
                     f"e.g. {absent[:3]}", "write every listed gene as a column, in list order")
  order = np.array([position[g] for g in gene_names])
  back = np.flatnonzero(np.diff(order) < 0)
  if len(back):
    i = int(back[0]) + 1
    raise InputError(path, f"genes are out of the order of {genes_path}: '{gene_names[i]}' "
                     f"(list position {order[i]}) comes after '{gene_names[i - 1]}' "
                     f"(list position {order[i - 1]})",
                     "reorder the columns to the list's order, e.g. adata[:, listed_genes]")
  return True


def _check_pert_counts(counts: pd.Series, table: pd.DataFrame, *, path: str,
                       pert_counts_path: str, control_label: str) -> None:
  """Each target of `pert_counts` must have exactly its `n_cells` cells, and no other target."""
  expected = table[table.target_gene != control_label].set_index("target_gene").n_cells
  missing = sorted(set(expected.index) - set(counts.index))
  if missing:
    raise InputError(path, f"{len(missing)} targets of {pert_counts_path} have no cells, "
                     f"e.g. {missing[:3]}", "predict cells for every target listed there")
  extra = sorted(set(counts.index) - set(expected.index))
  if extra:
    raise InputError(path, f"{len(extra)} targets are not in {pert_counts_path}, e.g. {extra[:3]}",
                     "predict only the listed targets (and controls)")
  wrong = [(t, int(counts[t]), int(n)) for t, n in expected.items() if counts[t] != n]
  if wrong:
    shown = ", ".join(f"{t} has {n:,} (expected {e:,})" for t, n, e in wrong[:3])
    raise InputError(path, f"{len(wrong)} targets have a cell count other than n_cells in "
                     f"{pert_counts_path}: {shown}", "predict exactly n_cells cells per target")


@dataclasses.dataclass
class _ValueScan:
  """What one pass over X learned; see `_scan_values`."""
  scale: str = "counts"
  max_value: float = 0.0
  n_empty_cells: int = 0
  first_count_row: int | None = None  # A row whose non-zero values are all integers.
  first_log1p_row: int | None = None  # A row with a fractional value.


def _scan_values(adata: ad.AnnData, *, path: str, expect: str | None,
                 chunk_size: int | None) -> _ValueScan:
  """Streams X in row chunks; raises InputError at the first chunk with a bad value."""
  chunk_size = chunk_size or int(np.clip(CHUNK_VALUES // adata.n_vars, 256, 8192))
  scan = _ValueScan()
  for start, chunk in _read_chunks(adata, path=path, chunk_size=chunk_size):
    _scan_chunk(scan, chunk, start=start, adata=adata, path=path, expect=expect)
  if scan.first_count_row is None and scan.first_log1p_row is None:
    raise InputError(path, "X holds only zeros", "write the expression values into X")
  scan.scale = "counts" if scan.first_log1p_row is None else "log1p"
  return scan


def _read_chunks(adata: ad.AnnData, *, path: str, chunk_size: int):
  """`io.iter_row_chunks`, with the read errors of a damaged file as InputError."""
  chunks = io.iter_row_chunks(adata, chunk_size)
  while True:
    try:
      item = next(chunks)
    except StopIteration:
      return
    except Exception as e:  # h5py/anndata raise many types for damaged datasets.
      raise InputError(path, f"X is unreadable ({type(e).__name__}: {e})",
                       "re-download or re-write the file") from e
    yield item


def _scan_chunk(scan: _ValueScan, chunk, *, start: int, adata: ad.AnnData, path: str,
                expect: str | None) -> None:
  """Checks one CSR chunk of rows `start...`; updates `scan` in place."""
  data = chunk.data
  rows = np.repeat(np.arange(chunk.shape[0], dtype=np.int32), np.diff(chunk.indptr))

  def cell(mask) -> str:  # The first offending cell, for the message.
    row = start + int(rows[np.flatnonzero(mask)[0]])
    return f"row {row}, cell '{adata.obs_names[row]}'"

  bad = ~np.isfinite(data)
  if bad.any():
    raise InputError(path, f"X holds NaN or infinite values (first: {cell(bad)})",
                     "fix the step that wrote X; expression values must be finite")
  negative = data < 0
  if negative.any():
    raise InputError(path, f"X holds negative values, e.g. {data[negative][0]:g} "
                     f"({cell(negative)})",
                     "write raw counts or log1p values, both >= 0 (not scaled/centred data)")
  fractional = (data - np.floor(data)) > FRACTION_EPSILON
  _check_scale(scan, data, rows, fractional, start=start, n_rows=chunk.shape[0],
               cell=cell, path=path, expect=expect)
  if len(data):
    scan.max_value = max(scan.max_value, float(data.max()))


def _check_scale(scan: _ValueScan, data, rows, fractional, *, start, n_rows, cell, path,
                 expect) -> None:
  """Classifies rows as counts (integer) or log1p (fractional); rejects wrong or mixed scales."""
  log1p_row = np.bincount(rows[fractional], minlength=n_rows) > 0
  nonzero = np.bincount(rows[data != 0], minlength=n_rows)
  count_row = (nonzero > 0) & ~log1p_row
  scan.n_empty_cells += int((nonzero == 0).sum())
  if log1p_row.any():
    if expect == "counts":
      raise InputError(path, f"X holds fractional values, e.g. {data[fractional][0]:g} "
                       f"({cell(fractional)}): log1p or normalised data, not raw counts",
                       "write the raw integer UMI counts (e.g. from layers['counts']), "
                       "or pass --expect log1p")
    too_big = fractional & (data >= LOG1P_MAX)
    if too_big.any():
      raise InputError(path, f"fractional values reach {data[too_big].max():g} >= {LOG1P_MAX:g} "
                       f"({cell(too_big)}): not log1p data (normalised but not log-transformed?)",
                       "apply log1p after normalising, or write raw integer counts")
    if scan.first_log1p_row is None:
      scan.first_log1p_row = start + int(np.flatnonzero(log1p_row)[0])
  if count_row.any():
    if expect == "log1p":
      raise InputError(path, f"X holds integer counts only ({cell(count_row[rows])}), "
                       "not log1p data", "normalise and log1p the counts, or drop --expect log1p")
    if scan.first_count_row is None:
      scan.first_count_row = start + int(np.flatnonzero(count_row)[0])
  if scan.first_count_row is not None and scan.first_log1p_row is not None:
    raise InputError(path, f"mixed scales: row {scan.first_count_row} holds integer counts but "
                     f"row {scan.first_log1p_row} holds fractional log1p values",
                     "write every cell on one scale (all raw counts or all log1p)")


def _parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m vccjax.data.validate",
      description="Check an .h5ad file for use as training data, ground truth or a VCC "
                  "submission (cell-eval prep/run accept it). Exits 0 with a summary, or 1 "
                  "with one line naming the problem and the fix.")
  parser.add_argument("file", help="the .h5ad file")
  parser.add_argument("--genes", help="gene_names.csv: the expected genes, in order, no header")
  parser.add_argument("--pert-counts", help="pert_counts csv: target_gene,n_cells per target")
  parser.add_argument("--role", choices=ROLES, default="train",
                      help="train/truth need raw counts; a submission counts or log1p")
  parser.add_argument("--expect", choices=SCALES, help="the scale X must have (default: by role)")
  parser.add_argument("--control-label", default=io.CONTROL_LABEL,
                      help="obs['target_gene'] of control cells [default: %(default)s]")
  parser.add_argument("--backed", action="store_true",
                      help="read X from disk in chunks (automatic above 1 GiB)")
  return parser.parse_args(argv)


def _one_line(e: InputError) -> InputError:
  """The same error with line breaks (e.g. from h5py messages) folded into spaces."""
  return InputError(" ".join(e.where.split()), " ".join(e.problem.split()), " ".join(e.fix.split()))


@cli_exit_on_input_error
def main(argv=None) -> None:
  """Command-line entry point: prints the summary, or one error line and exits 1."""
  args = _parse_args(argv)
  with warnings.catch_warnings():
    # anndata warns (multi-line) about what the checks report in one line, e.g. duplicate genes.
    warnings.simplefilter("ignore")
    try:
      summary = validate_file(args.file, role=args.role, expect=args.expect,
                              genes_path=args.genes, pert_counts_path=args.pert_counts,
                              control_label=args.control_label, backed=args.backed or None)
    except InputError as e:
      raise _one_line(e) from None
  print("\n".join(summary.lines()))


if __name__ == "__main__":
  main()
