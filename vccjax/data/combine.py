r"""Combine VCC-layout screens of different cell types into one file, for transfer across files.

  python -m vccjax.data.combine --out combined.h5ad norman19_k562.h5ad mcfaline23_glioma.h5ad@A172 \
      [--shared_targets] [--control_label non-targeting]

`FILE@CELLTYPE` keeps only that cell type's cells of a file (its `obs['cell_type']`).

Keeps the genes every file measures (in the first file's order) and each file's
`obs['target_gene']`, `obs['cell_type']` (a file without `cell_type` is named after the file)
and `obs['batch']` (prefixed by the file's position, so batches of different files never
merge); raw counts are copied as they are. `--shared_targets` keeps, in every file but the
first, only the perturbations the first file also has (and the controls): what a model trained
on the first file's cell type can be asked about elsewhere. Written atomically.
"""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pandas as pd
from absl import app, flags

from vccjax.data import io, writer
from vccjax.errors import InputError, cli_exit_on_input_error

_OUT = flags.DEFINE_string("out", None, "Combined .h5ad to write.")
_SHARED = flags.DEFINE_bool("shared_targets", False, "Keep, in the later files, only the "
                            "perturbations of the first file (and the controls).")
_CONTROL = flags.DEFINE_string("control_label", io.CONTROL_LABEL, "Label of control cells.")


def combine_screens(paths: list[str], out: str, *, shared_targets: bool = False,
                    control_label: str = io.CONTROL_LABEL) -> ad.AnnData:
  """Writes the screens of `paths` (`FILE` or `FILE@CELLTYPE`) as one file (see the module
  docstring); returns it."""
  if len(paths) < 2:
    raise InputError("paths", f"{len(paths)} file(s)", "give two or more files to combine")
  parts, first_targets = [], None
  for spec in paths:
    path, _, only = spec.partition("@")
    adata = io.read_h5ad(path)
    labels = io.read_labels(adata, path=path, control_label=control_label)
    cell_type = (labels.cell_type if labels.cell_type is not None else
                 np.full(adata.n_obs, os.path.splitext(os.path.basename(path))[0]))
    keep = cell_type == only if only else np.ones(adata.n_obs, bool)
    if not keep.any():
      raise InputError(path, f"no cells of cell type '{only}' (it has {sorted(set(cell_type))})",
                       "name a cell type of its obs['cell_type']")
    if first_targets is None:
      first_targets = set(labels.target_gene.tolist())
    elif shared_targets:
      keep &= labels.is_control | np.isin(labels.target_gene, list(first_targets))
    batch = np.char.add(f"{len(parts)}:", labels.batch.astype(str) if labels.batch is not None
                        else np.full(adata.n_obs, "all"))
    part = ad.AnnData(X=adata.X[np.flatnonzero(keep)],
                      var=pd.DataFrame(index=labels.gene_names.astype(str)),
                      obs=pd.DataFrame({"target_gene": labels.target_gene[keep],
                                        "cell_type": cell_type[keep], "batch": batch[keep]},
                                       index=[f"{len(parts)}:{c}" for c in
                                              adata.obs_names[keep]]))
    parts.append(part)
  genes = [g for g in parts[0].var_names if all(g in p.var_names for p in parts[1:])]
  if not genes:
    raise InputError(out, "the files share no gene", "combine screens that measure the same genes")
  combined = ad.concat([p[:, genes] for p in parts], join="inner")
  combined.obs = combined.obs.astype({"target_gene": "category", "cell_type": "category",
                                       "batch": "category"})
  writer.write_h5ad_atomic(combined, out)
  return combined


@cli_exit_on_input_error
def main(argv):
  combined = combine_screens(argv[1:], _OUT.value, shared_targets=_SHARED.value,
                             control_label=_CONTROL.value)
  counts = combined.obs.groupby("cell_type", observed=True)["target_gene"].agg(
      cells="size", targets="nunique")
  print(f"wrote {_OUT.value}: {combined.n_obs:,} cells x {combined.n_vars:,} genes")
  print(counts.to_string())


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
