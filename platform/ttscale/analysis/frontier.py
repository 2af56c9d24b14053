"""Compute-optimal scaling, two-fold (Snell et al. 2024, arXiv 2408.03314, §3.2 and §5.3).

An *option* is a configuration (strategy, hyperparameters, verifier, aggregation) with a
selection method, e.g. `beam_search:weighted`. For every model, dataset, difficulty bin and
budget, the compute-optimal option is the one with the best accuracy on the bin's problems —
chosen on one half of the problems and evaluated on the other, so the choice is never scored
on the problems it was made on:

- problems are split into folds 0/1 by a seeded, stable hash of their id (`assign_folds`);
- the option chosen on fold 0 is evaluated on fold 1 and vice versa; the reported accuracy
  pools both evaluations (= the mean over all problems of the cross-fitted verdicts);
- the baseline is the best *single* option per budget, chosen on all bins of one fold and
  evaluated on the other, per bin and overall (same folds).

Budgets are either the generation budget n (options compared at equal n) or FLOPs per
problem on a ×2 grid from the cheapest option up (every option × n whose FLOPs fit under
the budget competes, so a cheaper n of a costlier strategy can win). Ties go to fewer FLOPs, then to the option name.

Per-problem correctness of an option at n is the mean over seeds and draws (`points`). Only
budgets that stand for a real run count: n = N, or any n for prefix-shareable strategies
(`cells.budget_is_run`). FLOPs of the first n of N candidates are the cell's
(policy + verifier) FLOPs per problem scaled by n/N — exact for independent samples and for
whole DVTS subtrees, exact at n = N for every strategy.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import polars as pl

from ttscale.analysis.cell_results import prefix_cost
from ttscale.analysis.cells import budget_is_run
from ttscale.analysis.verdicts import SELECTORS

Budget = Literal["n", "flops"]
ALL_BINS = "all"
POINT_COLUMNS = ("model", "dataset", "config", "method", "option", "n", "flops_per_problem", "problem_id", "correct")


def assign_folds(problem_ids: pl.Series | list[str], seed: int = 0) -> pl.DataFrame:
    """problem_id, fold (0/1): the lowest bit of blake2b(seed, problem_id).

    Stable across machines, runs and library versions, and independent of which other
    problems are present; one hash per distinct problem id.
    """
    ids = sorted(set(problem_ids.to_list() if isinstance(problem_ids, pl.Series) else problem_ids))
    folds = [hashlib.blake2b(f"{seed}\x1f{pid}".encode(), digest_size=8).digest()[0] & 1 for pid in ids]
    return pl.DataFrame({"problem_id": ids, "fold": folds}, schema={"problem_id": pl.String, "fold": pl.Int64})


def cell_flops(runs: pl.DataFrame) -> pl.DataFrame:
    """cell_id, flops_cell: mean total (policy + verifier) FLOPs per problem of each cell.

    A cell whose FLOPs are 0 (imported: parameter counts unknown) gets null, not 0: unknown
    compute must not look free on a FLOPs axis.
    """
    total = pl.col("policy_flops").cast(pl.Float64).fill_null(0.0) + pl.col("verifier_flops").cast(pl.Float64).fill_null(0.0)
    mean = total.mean()
    return runs.group_by("cell_id").agg(pl.when(mean > 0).then(mean).alias("flops_cell"))


def frontier_points(
    per_problem: pl.DataFrame,
    described: pl.DataFrame,
    runs: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per-problem correctness of every option at every real budget, pooled over seeds.

    `per_problem` is `Verdicts.per_problem`; `described` is `cells.describe_cells`; `runs`
    is `store.read_problem_runs` (FLOPs; without it `flops_per_problem` is null). Columns:
    model, dataset, config, method, option, n, flops_per_problem, problem_id, correct.
    """
    chosen = per_problem.filter(pl.col("method").is_in(SELECTORS))
    n_max = chosen.group_by("cell_id").agg(pl.col("n").max().alias("_n_max"))
    rows = (
        chosen.join(described.select("cell_id", "model", "dataset", "strategy", "config"), on="cell_id", how="inner")
        .join(n_max, on="cell_id", how="left")
        .filter(budget_is_run(pl.col("n"), pl.col("_n_max"), pl.col("strategy")))
    )
    if runs is not None:
        flops = cell_flops(runs)
        rows = rows.join(flops, on="cell_id", how="left").with_columns(
            prefix_cost(pl.col("flops_cell"), pl.col("n"), pl.col("_n_max")).alias("_flops")
        )
    else:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("_flops"))
    keys = ["model", "dataset", "config", "method", "n"]
    flops_per_option = rows.group_by(*keys).agg(pl.col("_flops").mean().alias("flops_per_problem"))
    correct = rows.group_by(*keys, "problem_id").agg(pl.col("correct").mean())
    return (
        correct.join(flops_per_option, on=keys, how="left")
        .with_columns((pl.col("config") + ":" + pl.col("method")).alias("option"))
        .select(*POINT_COLUMNS)
        .sort("model", "dataset", "option", "n", "problem_id")
    )


def _fold_stats(points: pl.DataFrame, bins: pl.DataFrame, folds: pl.DataFrame, budget: Budget) -> pl.DataFrame:
    """model, dataset, bin, fold, budget, option, flops, n, hits, count (sum and number of verdicts)."""
    labelled = points.join(
        bins.select("model", "dataset", "problem_id", pl.col("bin").cast(pl.String)),
        on=["model", "dataset", "problem_id"],
        how="inner",
    ).join(folds, on="problem_id", how="inner")
    stats = labelled.group_by("model", "dataset", "bin", "fold", "option", "n").agg(
        pl.col("correct").sum().alias("hits"),
        pl.len().cast(pl.Int64).alias("count"),
        pl.col("flops_per_problem").first().alias("flops"),
    )
    if budget == "n":
        return stats.with_columns(pl.col("n").cast(pl.Float64).alias("budget"))
    # Every option × n whose FLOPs fit under a budget competes at that budget.
    option_n = (pl.col("option") + "@" + pl.col("n").cast(pl.String)).alias("option")
    stats = stats.filter(pl.col("flops").is_not_null()).with_columns(option_n)
    grid = flops_grid(stats.select("model", "dataset", "flops"))
    fits = pl.col("flops") <= pl.col("budget") * (1 + 1e-9)
    return stats.join(grid, on=["model", "dataset"], how="inner").filter(fits)


def flops_grid(flops: pl.DataFrame, factor: float = 2.0) -> pl.DataFrame:
    """model, dataset, budget: from the cheapest option's FLOPs, ×`factor` each step, up to the dearest.

    A geometric grid reads like the generation budgets (1, 2, 4, ...) and keeps near-equal
    FLOPs of different options from each making a row.
    """
    bounds = flops.group_by("model", "dataset").agg(pl.col("flops").min().alias("lo"), pl.col("flops").max().alias("hi"))
    steps = ((pl.col("hi") / pl.col("lo")).log(factor) - 1e-9).ceil().clip(lower_bound=0).cast(pl.Int64)
    return (
        bounds.with_columns(pl.int_ranges(0, steps + 1).alias("k"))
        .explode("k")
        .with_columns(pl.min_horizontal(pl.col("lo") * pl.lit(factor).pow(pl.col("k")), pl.col("hi")).alias("budget"))
        .select("model", "dataset", "budget")
        .unique()
        .sort("model", "dataset", "budget")
    )


def _choose(stats: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """keys + option, flops, n: the best option per keys (ties: fewer FLOPs, then name)."""
    acc = (pl.col("hits") / pl.col("count")).alias("_acc")
    return (
        stats.with_columns(acc, pl.col("flops").fill_null(0.0).alias("_f"))
        .sort([*keys, "_acc", "_f", "option"], descending=[False] * len(keys) + [True, False, False])
        .group_by(keys, maintain_order=True)
        .first()
        .select(*keys, "option")
    )


def _evaluate(stats: pl.DataFrame, choice: pl.DataFrame, keys: list[str], prefix: str) -> pl.DataFrame:
    """Evaluate the option chosen on fold f on fold 1 - f, per (model, dataset, bin, budget)."""
    picked = choice.with_columns((1 - pl.col("fold")).alias("fold"), pl.col("fold").alias("chosen_on"))
    evaluated = stats.join(picked, on=[*keys, "fold", "option"], how="inner")
    base = ["model", "dataset", "bin", "budget"]
    summed = evaluated.group_by(base).agg(
        pl.col("hits").sum().alias(f"{prefix}_hits"),
        pl.col("count").sum().alias(f"{prefix}_count"),
        (pl.col("flops").fill_null(float("nan")) * pl.col("count")).sum().alias(f"{prefix}_flops_sum"),
        pl.col("option").filter(pl.col("chosen_on") == 0).first().alias(f"{prefix}_chosen_on_0"),
        pl.col("option").filter(pl.col("chosen_on") == 1).first().alias(f"{prefix}_chosen_on_1"),
    )
    return summed


def compute_optimal(
    points: pl.DataFrame,
    bins: pl.DataFrame,
    *,
    fold_seed: int = 0,
    budget: Budget = "n",
) -> pl.DataFrame:
    """The compute-optimal and best-single accuracy per model, dataset, bin and budget.

    `points` is `frontier_points(...)`; `bins` is `difficulty.difficulty_bins(...)`. Columns:
    model, dataset, bin ("1".."5" or "all"), budget (n, or FLOPs per problem), n_problems,
    optimal_accuracy, single_accuracy, gain, optimal_flops, single_flops (problem-weighted
    FLOPs per problem of the chosen options), optimal_chosen_on_0/1, single_chosen_on_0/1
    (the option chosen on each fold, hence evaluated on the other).
    """
    folds = assign_folds(points["problem_id"].unique(), fold_seed)
    stats = _fold_stats(points, bins, folds, budget)
    per_bin_keys = ["model", "dataset", "bin", "budget", "fold"]
    optimal = _evaluate(stats, _choose(stats, per_bin_keys), ["model", "dataset", "bin", "budget"], "optimal")
    overall = stats.group_by("model", "dataset", "budget", "fold", "option").agg(
        pl.col("hits").sum(), pl.col("count").sum(), pl.col("flops").first()
    )
    single_choice = _choose(overall, ["model", "dataset", "budget", "fold"])
    single = _evaluate(stats, single_choice, ["model", "dataset", "budget"], "single")
    joined = optimal.join(single, on=["model", "dataset", "bin", "budget"], how="full", coalesce=True)
    sums = [c for c in joined.columns if c.endswith(("_hits", "_count", "_flops_sum"))]
    labels = [c for c in joined.columns if "_chosen_on_" in c]
    totals = joined.group_by("model", "dataset", "budget").agg(
        *[pl.col(c).sum() for c in sums], *[pl.lit(None, dtype=pl.String).alias(c) for c in labels]
    ).with_columns(pl.lit(ALL_BINS).alias("bin"))
    single_labels = single_choice.group_by("model", "dataset", "budget").agg(
        pl.col("option").filter(pl.col("fold") == 0).first().alias("single_chosen_on_0"),
        pl.col("option").filter(pl.col("fold") == 1).first().alias("single_chosen_on_1"),
    )
    totals = totals.drop("single_chosen_on_0", "single_chosen_on_1").join(
        single_labels, on=["model", "dataset", "budget"], how="left"
    )
    both = pl.concat([joined, totals.select(joined.columns)], how="vertical")
    out = both.with_columns(
        pl.col("optimal_count").alias("n_problems"),
        (pl.col("optimal_hits") / pl.col("optimal_count")).alias("optimal_accuracy"),
        (pl.col("single_hits") / pl.col("single_count")).alias("single_accuracy"),
        (pl.col("optimal_flops_sum") / pl.col("optimal_count")).fill_nan(None).alias("optimal_flops"),
        (pl.col("single_flops_sum") / pl.col("single_count")).fill_nan(None).alias("single_flops"),
    ).with_columns((pl.col("optimal_accuracy") - pl.col("single_accuracy")).alias("gain"))
    if budget == "n":
        out = out.with_columns(pl.col("budget").cast(pl.Int64))
    bin_order = pl.when(pl.col("bin") == ALL_BINS).then(pl.lit(10**9)).otherwise(pl.col("bin").cast(pl.Int64, strict=False))
    return (
        out.select(
            "model",
            "dataset",
            "bin",
            "budget",
            "n_problems",
            "optimal_accuracy",
            "single_accuracy",
            "gain",
            "optimal_flops",
            "single_flops",
            "optimal_chosen_on_0",
            "optimal_chosen_on_1",
            "single_chosen_on_0",
            "single_chosen_on_1",
        )
        .with_columns(bin_order.alias("_order"))
        .sort("model", "dataset", "_order", "budget")
        .drop("_order")
    )
