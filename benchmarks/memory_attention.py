r"""What the memory learned: which training perturbations a held-out target reads.

  python benchmarks/memory_attention.py --workdir=OUT/r0_fold0/set_tx [--top=3]

Loads a trained set transformer with `model.memory` (a benchmark fold's `set_tx` directory),
and prints, for each of its test targets, the memory entries with the largest attention weight
(with their IDF GO cosine), the weight of the "null" entry (the mean effect), and the learned
multiple of the GO similarity.
"""

from __future__ import annotations

import argparse

import numpy as np

from vccjax.experiment import assembly
from vccjax.models import memory_attention
from vccjax.predict import trained_run


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--workdir", required=True)
  p.add_argument("--top", type=int, default=3)
  args = p.parse_args()
  exp, params, _ = trained_run.load_trained(args.workdir)
  if not exp.memory or not exp.memory.size:
    raise SystemExit(f"{args.workdir}: the model reads no memory (config.model.memory)")
  targets = exp.split.test
  enc = exp.encode(targets, allow_missing=True)
  x = assembly.model_inputs(np.zeros((len(targets), 1, len(exp.in_genes)), np.float32),
                            np.ones((len(targets), 1), bool), enc, np.arange(len(targets)))
  memory = params["params"]["memory"]
  module = memory_attention.MemoryAttention(hidden=exp.config.model.hidden)
  _, weights = module.apply({"params": memory}, x)
  weights = np.asarray(weights)[:, 0]  # first target gene: [T, M + 1]
  print(f"GO similarity multiple {float(memory['similarity_scale']):.2f} (from 10), null logit "
        f"{float(memory['null_logit']):.2f}; memory: {len(exp.memory.targets)} training targets")
  for i, target in enumerate(targets):
    order = np.argsort(-weights[i, :-1])[:args.top]
    read = ", ".join(f"{exp.memory.targets[j]} {weights[i, j]:.2f} "
                     f"(GO {enc.memory_sim[i, 0, j]:.2f})" for j in order)
    print(f"{target}: {read}; null (mean effect) {weights[i, -1]:.2f}")


if __name__ == "__main__":
  main()
