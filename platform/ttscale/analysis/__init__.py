"""Analysis: polars frames from `ttscale.store.read_*` in, result frames out; no I/O.

Data flow: candidates → `verdicts` (which answer each method picks at each budget n) →
`accuracy` (per cell, per configuration across seeds) and, with `difficulty` bins, →
`frontier` (compute-optimal option per bin and budget, two-fold) → `comparison` (models at
matched FLOPs) → `report` (tables and the chart for the CLI and tracking).
"""

from ttscale.analysis.accuracy import cell_accuracy, seed_accuracy
from ttscale.analysis.comparison import compare_models, model_frontiers
from ttscale.analysis.cells import describe_cells
from ttscale.analysis.difficulty import difficulty_bins, quantile_bins, reference_cells
from ttscale.analysis.frontier import assign_folds, compute_optimal, frontier_points
from ttscale.analysis.passk import pass_at_k, with_pass_at_k
from ttscale.analysis.report import Report, build_report, plot_frontier, render
from ttscale.analysis.verdicts import Verdicts, budgets, problem_verdicts, select_verdicts

__all__ = [
    "Report",
    "Verdicts",
    "assign_folds",
    "budgets",
    "build_report",
    "cell_accuracy",
    "compare_models",
    "compute_optimal",
    "describe_cells",
    "difficulty_bins",
    "frontier_points",
    "model_frontiers",
    "pass_at_k",
    "plot_frontier",
    "problem_verdicts",
    "quantile_bins",
    "reference_cells",
    "render",
    "seed_accuracy",
    "select_verdicts",
    "with_pass_at_k",
]
