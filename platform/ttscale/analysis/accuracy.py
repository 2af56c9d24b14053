"""Accuracy at n: per cell, then per configuration across seeds, with 95% intervals.

Per cell, accuracy is the mean verdict over the cell's problems (`verdicts`). In bootstrap
mode the interval is the 2.5–97.5 percentile range of the per-draw accuracies (percentile
bootstrap over candidate orderings); prefix mode has one draw, and its interval is the 95%
Wilson score interval over the cell's problems.

Across seeds (cells that differ only in seed), accuracy is the mean of the seeds' accuracies
and the interval is the t-interval of that mean, mean ± t(0.975, s-1)·sd/√s (clipped to
[0, 1]), as the
reference reports means over 5 seeds. With one seed, the cell's own interval is kept.
"""

from __future__ import annotations

import math

import polars as pl

from ttscale.analysis.verdicts import Verdicts

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (beyond: normal 1.96).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df ≥ 1)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def t_interval(mean: float, sd: float | None, k: int) -> tuple[float, float]:
    """The 95% t-interval of a mean over k values with sample standard deviation `sd`:
    mean ± t(0.975, k−1)·sd/√k; nan at both ends without a spread (k < 2 or no sd). For a
    paired comparison the values are the per-problem differences."""
    half = t975(k - 1) * sd / math.sqrt(k) if k > 1 and sd is not None else float("nan")
    return mean - half, mean + half


def t_half_width(sd: pl.Expr, k: pl.Expr) -> pl.Expr:
    """`t_interval`'s half width as an expression: t(0.975, k−1)·sd/√k (null where k < 2)."""
    quantiles = {j: t975(j - 1) for j in range(2, len(_T975) + 2)}
    t = k.replace_strict(quantiles, default=1.96, return_dtype=pl.Float64)
    return pl.when(k > 1).then(t * sd / k.cast(pl.Float64).sqrt())


def wilson_interval(mean: pl.Expr, count: pl.Expr, z: float = 1.96) -> tuple[pl.Expr, pl.Expr]:
    """The 95% Wilson score interval of a proportion `mean` over `count` problems (fractional
    verdicts — means over draws or seeds — use the same formula; their variance is at most
    p(1 − p), so it is conservative). Unlike mean ± 1.96·sd/√n it is not empty at 0/n or n/n."""
    n = count.cast(pl.Float64)
    centre = (mean + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * ((mean * (1 - mean) / n + z**2 / (4 * n**2)).clip(lower_bound=0)).sqrt() / (1 + z**2 / n)
    return (centre - half).clip(0.0, 1.0), (centre + half).clip(0.0, 1.0)


def cell_accuracy(verdicts: Verdicts) -> pl.DataFrame:
    """cell_id, n, method, accuracy, ci_low, ci_high, n_problems, n_draws.

    The interval: with several draws (bootstrap mode), the percentile range of the draws'
    accuracies (how much the choice of n among N candidates moves the figure, problems fixed);
    with one draw (prefix mode), the Wilson interval over the problems (how much another sample
    of problems of the same kind could move it)."""
    means = verdicts.per_problem.group_by("cell_id", "n", "method").agg(
        pl.col("correct").mean().alias("accuracy"), pl.len().cast(pl.Int64).alias("n_problems")
    )
    spread = verdicts.per_draw.group_by("cell_id", "n", "method").agg(
        pl.len().cast(pl.Int64).alias("n_draws"),
        pl.col("accuracy").quantile(0.025, "linear").alias("ci_low"),
        pl.col("accuracy").quantile(0.975, "linear").alias("ci_high"),
    )
    one_draw = pl.col("n_draws") <= 1
    low, high = wilson_interval(pl.col("accuracy"), pl.col("n_problems"))
    return (
        means.join(spread, on=["cell_id", "n", "method"], how="left")
        .with_columns(
            pl.when(one_draw).then(low).otherwise(pl.col("ci_low")).alias("ci_low"),
            pl.when(one_draw).then(high).otherwise(pl.col("ci_high")).alias("ci_high"),
        )
        .select("cell_id", "n", "method", "accuracy", "ci_low", "ci_high", "n_problems", "n_draws")
        .sort("cell_id", "n", "method")
    )


SEED_KEYS = ("model", "dataset", "strategy", "config", "prefix_unit", "n_cell", "n", "method")


def seed_accuracy(cell_acc: pl.DataFrame, described: pl.DataFrame) -> pl.DataFrame:
    """Accuracy per configuration across seeds.

    Columns: model, dataset, strategy, config, prefix_unit, n_cell, n, method, accuracy, std, ci_low,
    ci_high, n_seeds. `described` is `cells.describe_cells(cells)`; cells absent from it
    (or from `cell_acc`) are left out.
    """
    joined = cell_acc.join(described, on="cell_id", how="inner")
    grouped = joined.group_by(*SEED_KEYS).agg(
        pl.col("accuracy").mean().alias("_mean"),
        pl.col("accuracy").std(ddof=1).alias("std"),
        pl.len().cast(pl.Int64).alias("n_seeds"),
        pl.col("ci_low").first().alias("_cell_low"),
        pl.col("ci_high").first().alias("_cell_high"),
    )
    half = t_half_width(pl.col("std"), pl.col("n_seeds"))
    many = pl.col("n_seeds") > 1
    return (
        grouped.with_columns(
            pl.col("_mean").alias("accuracy"),
            pl.when(many).then((pl.col("_mean") - half).clip(0.0, 1.0)).otherwise(pl.col("_cell_low")).alias("ci_low"),
            pl.when(many).then((pl.col("_mean") + half).clip(0.0, 1.0)).otherwise(pl.col("_cell_high")).alias("ci_high"),
        )
        .select(*SEED_KEYS, "accuracy", "std", "ci_low", "ci_high", "n_seeds")
        .sort("model", "dataset", "config", "n_cell", "method", "n")
    )
