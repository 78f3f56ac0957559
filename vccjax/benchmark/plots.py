"""The benchmark's figure (`OUT/scores.png`): the table and the paired comparison, to look at."""

from __future__ import annotations

from matplotlib.figure import Figure  # no pyplot: no global backend switch, works headless

from vccjax import atomic


def plot_scores(per_fold: list[dict], models: list[str], *, summary: dict, bound: dict,
                paired: dict, paired_model: str, title: str, path: str) -> str:
  """Three panels: each model's overall score (a dot per (repeat, fold) pair, the mean with its
  95% bootstrap interval over targets); against half the cells, the technical duplicate and
  each model; `paired_model` minus each peer per target (mean, 95% interval)."""
  panels = 1 + bool(bound) + bool(paired)
  fig = Figure(figsize=(4.2 * panels, 3.8))
  axes = list(fig.subplots(1, panels)) if panels > 1 else [fig.subplots(1, 1)]
  ax = axes.pop(0)
  for i, m in enumerate(models):
    dots = [f["scores"][m]["overall"] for f in per_fold]
    ax.plot([i] * len(dots), dots, "o", color="grey", alpha=0.4, ms=4)
    o = summary[m]["overall"]
    low, high = o.get("ci_low", o["mean"]), o.get("ci_high", o["mean"])
    ax.errorbar([i], [o["mean"]], yerr=[[o["mean"] - low], [high - o["mean"]]], fmt="s",
                color="C3" if m == paired_model else "C0", capsize=4)
  ax.axhline(0, color="grey", lw=0.5)
  ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
  ax.set(ylabel="overall (0 = cell-mean baseline)", title="overall: folds, mean, 95% CI")
  if bound:
    ax = axes.pop(0)
    names = ["technical_duplicate"] + models
    ax.bar(range(len(names)), [bound[n]["overall"] for n in names],
           color=["grey"] + ["C3" if m == paired_model else "C0" for m in models])
    for i, n in enumerate(names[1:], start=1):
      ax.text(i, bound[n]["overall"], f"{bound[n]['share']:.2f}", ha="center", va="bottom",
              fontsize=8)
    ax.set_xticks(range(len(names)), ["duplicate"] + models, rotation=30, ha="right")
    ax.set(title="against half the cells (share of the duplicate)")
  if paired:
    ax = axes.pop(0)
    peers = list(paired)
    means = [paired[p]["mean_difference"] for p in peers]
    ax.errorbar(means, range(len(peers)),
                xerr=[[m - paired[p]["low"] for m, p in zip(means, peers)],
                      [paired[p]["high"] - m for m, p in zip(means, peers)]],
                fmt="o", color="C3", capsize=4)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(peers)),
                  [f"{p} ({paired[p]['wins']}/{paired[p]['ties']}/{paired[p]['losses']})"
                   for p in peers])
    ax.set(xlabel=f"{paired_model} minus peer, per target",
           title="paired: mean, 95% CI (won/tied/lost)")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  with atomic.writing(path) as partial:
    fig.savefig(partial, dpi=110, format="png")
  return path
