"""Accuracy of every option at every real budget within each difficulty bin.

The per-bin view of `frontier.frontier_points`: for each model, dataset, bin, option
(configuration × selection method) and budget n, the mean per-problem correctness over the
bin's problems (pooled over seeds, as the points are). It is what a chart faceted by
difficulty draws; `frontier.compute_optimal` picks the best of these options per bin, two-fold.
"""

from __future__ import annotations

import polars as pl

BIN_ACCURACY_COLUMNS = (
    "model", "dataset", "bin", "option", "config", "method", "n", "flops_per_problem", "accuracy", "n_problems",
)  # fmt: skip


def bin_accuracy(points: pl.DataFrame, bins: pl.DataFrame) -> pl.DataFrame:
    """One row per (model, dataset, bin, option, n): accuracy over the bin's problems.

    `points` is `frontier.frontier_points(...)`; `bins` is `difficulty.difficulty_bins(...)`.
    Problems without a bin are left out. `bin` is an Int64 (1 = easiest).
    """
    keys = ["model", "dataset", "bin", "option", "config", "method", "n"]
    return (
        points.join(bins.select("model", "dataset", "problem_id", "bin"), on=["model", "dataset", "problem_id"], how="inner")
        .group_by(keys)
        .agg(
            pl.col("flops_per_problem").first(),
            pl.col("correct").mean().alias("accuracy"),
            pl.len().cast(pl.Int64).alias("n_problems"),
        )
        .with_columns(pl.col("bin").cast(pl.Int64))
        .select(*BIN_ACCURACY_COLUMNS)
        .sort("model", "dataset", "bin", "option", "n")
    )
