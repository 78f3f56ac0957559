"""The embedded default data: when `config.data.path` is empty, a synthetic screen is written.

The file goes to `workdir/synthetic_<hash>.h5ad` (hash of `config.data.synthetic`), once: a
resumed run or a rerun reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os

from vccjax.data import synthetic


def resolve(config, workdir: str):
  """Returns `config` with `data.path` set to where its synthetic file goes; writes nothing."""
  if config.data.path:
    return config
  spec = config.data.synthetic.to_dict()
  digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
  config = config.copy_and_resolve_references()
  config.data.path = os.path.join(workdir, f"synthetic_{digest}.h5ad")
  return config


def materialise(config, workdir: str):
  """Returns `config` with `data.path` set, writing the synthetic file first if needed."""
  resolved = resolve(config, workdir)
  path = resolved.data.path
  if not config.data.path and not os.path.exists(path):
    spec = config.data.synthetic.to_dict()
    print(f"[data] writing synthetic screen {spec} to {path}")
    synthetic.write_synthetic(path, n_cells=spec["cells"], n_genes=spec["genes"],
                              n_targets=spec["targets"], n_batches=spec["batches"],
                              median_umi=spec["umi"], seed=spec["seed"], workers=1)
  return resolved
