"""Plots a run leaves in its workdir (PNG, no display needed)."""

from __future__ import annotations

from matplotlib.figure import Figure  # no pyplot: no global backend switch, works headless


def plot_training(records: list[dict], path: str) -> str:
  """Loss (left) and validation scores (right) against step, from metrics.jsonl records."""
  train = [r for r in records if "loss" in r]
  evals = [r for r in records if "val/overall" in r]
  fig = Figure(figsize=(10, 3.6))
  ax_l, ax_s = fig.subplots(1, 2)
  if train:
    ax_l.plot([r["step"] for r in train], [r["loss"] for r in train], label="total")
    for key in ("distribution_loss", "pseudobulk_loss"):
      ax_l.plot([r["step"] for r in train], [r[key] for r in train], label=key, alpha=0.7)
    ax_l.set_yscale("log")
  ax_l.set(xlabel="step", title="training loss")
  if train:
    ax_l.legend(fontsize=8)
  for key in ("overall", "des_scaled", "pds_scaled", "mae_scaled"):
    if evals:
      scale = 1.0 if key == "overall" else 100.0
      ax_s.plot([r["step"] for r in evals], [scale * r[f"val/{key}"] for r in evals], "o-",
                label=key if key == "overall" else f"100 x {key}")
  ax_s.axhline(0, color="grey", lw=0.5)
  ax_s.set(xlabel="step", title="validation (0 = cell-mean baseline)")
  if evals:
    ax_s.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path
