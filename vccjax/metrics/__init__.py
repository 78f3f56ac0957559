"""The VCC 2025 evaluator (DES, PDS, MAE, baseline-scaled overall score), agreeing with cell-eval.

  result = metrics.evaluate(real_log1p=..., real_targets=..., pred_log1p=..., pred_targets=...,
                            gene_names=genes)
  scores = metrics.scaled_scores(raw=result.means(), baseline=baseline_result.means())

Inputs are [cells, genes] float32 log1p arrays on the VCC scale (`to_vcc_log1p` puts a loaded
file there, as cell-eval does). Layout: `scale` (file scaling), `ranksum` (per-gene ranking on the
host), `wilcoxon`, `fdr`, `pseudobulk`, `des`, `pds` (vectorised JAX), `evaluate` (the driver),
`baseline` (cell-mean baseline), `scaled` (overall score).
"""

from vccjax.metrics.baseline import assemble_baseline, cell_mean_baseline, mean_of_pseudobulks
from vccjax.metrics.baseline_summary import summarize_cell_mean_baseline
from vccjax.metrics.des import abs_log2_fold_change, de_overlap
from vccjax.metrics.evaluate import (CONTROL_LABEL, FDR_MODES, EvalResult, FileSummary, compare,
                                     evaluate, summarize, summarize_chunks)
from vccjax.metrics.fdr import benjamini_hochberg
from vccjax.metrics.pds import discrimination_scores, mean_absolute_error
from vccjax.metrics.pseudobulk import group_means, group_sums
from vccjax.metrics.ranksum import (ChunkReader, GeneBlockReader, GroupRankSums, rank_sums,
                                     rows_per_chunk)
from vccjax.metrics.scale import (ScalePlan, apply_scaling, is_counts, plan_scaling,
                                  plan_scaling_of_rows, read_scaled, read_stored, row_scaling,
                                  to_vcc_log1p)
from vccjax.metrics.scale_columns import plan_scaling_of_columns, read_scaled_columns
from vccjax.metrics.scaled import scaled_scores
from vccjax.metrics.scratch import Scratch, ScratchPool, in_order
from vccjax.metrics.wilcoxon import mannwhitney_vs_control

__all__ = [
    "CONTROL_LABEL", "FDR_MODES", "ChunkReader", "EvalResult", "FileSummary", "GeneBlockReader",
    "GroupRankSums", "ScalePlan", "Scratch", "ScratchPool",
    "abs_log2_fold_change", "apply_scaling", "assemble_baseline", "benjamini_hochberg",
    "cell_mean_baseline", "compare", "de_overlap", "discrimination_scores", "evaluate",
    "group_means", "group_sums", "in_order", "is_counts", "mannwhitney_vs_control", "mean_absolute_error",
    "mean_of_pseudobulks", "plan_scaling", "plan_scaling_of_columns", "plan_scaling_of_rows",
    "rank_sums", "read_scaled", "read_scaled_columns", "read_stored", "row_scaling",
    "rows_per_chunk", "scaled_scores",
    "summarize", "summarize_cell_mean_baseline", "summarize_chunks", "to_vcc_log1p",
]
