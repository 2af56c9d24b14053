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
problem (charged by default, or computed: `analysis.costs`) on a ×2 grid from the cheapest option up (every option × n whose FLOPs fit under
the budget competes, so a cheaper n of a costlier strategy can win). Ties go to fewer FLOPs, then to the option name.

Per-problem correctness of an option at n is the mean over seeds and draws (`points`). Only
budgets that stand for a real run count: n = N, or multiples of the prefix unit for
prefix-shareable strategies (`cells.budget_is_run`). FLOPs of the first n of N candidates are
`costs.prefix_cost` of the cell's FLOPs per problem.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import polars as pl

from ttscale.analysis.accuracy import t975, wilson_interval
from ttscale.analysis.cells import budget_is_run
from ttscale.analysis.costs import FlopsAxis, prefix_cost, problem_flops, shared_prompt
from ttscale.analysis.verdicts import SELECTORS

Budget = Literal["n", "flops"]
ALL_BINS = "all"
FRONTIER_COLUMNS = (
    "model", "dataset", "bin", "budget", "n_problems",
    "optimal_accuracy", "optimal_ci_low", "optimal_ci_high", "single_accuracy", "single_ci_low", "single_ci_high",
    "gain", "gain_ci_low", "gain_ci_high", "optimal_flops", "single_flops",
    "optimal_chosen_on_0", "optimal_chosen_on_1", "single_chosen_on_0", "single_chosen_on_1",
)  # fmt: skip
POINT_COLUMNS = ("model", "dataset", "config", "method", "option", "n", "flops_per_problem", "problem_id", "correct")


def assign_folds(problem_ids: pl.Series | list[str], seed: int = 0) -> pl.DataFrame:
    """problem_id, fold (0/1): the lowest bit of blake2b(seed, problem_id).

    Stable across machines, runs and library versions, and independent of which other
    problems are present; one hash per distinct problem id.
    """
    ids = sorted(set(problem_ids.to_list() if isinstance(problem_ids, pl.Series) else problem_ids))
    folds = [hashlib.blake2b(f"{seed}\x1f{pid}".encode(), digest_size=8).digest()[0] & 1 for pid in ids]
    return pl.DataFrame({"problem_id": ids, "fold": folds}, schema={"problem_id": pl.String, "fold": pl.Int64})


def frontier_points(
    per_problem: pl.DataFrame,
    described: pl.DataFrame,
    runs: pl.DataFrame | None = None,
    flops: FlopsAxis = "charged",
) -> pl.DataFrame:
    """Per-problem correctness of every option at every real budget, pooled over seeds.

    `per_problem` is `Verdicts.per_problem`; `described` is `cells.describe_cells`; `runs`
    is `store.read_problem_runs` (FLOPs on the `flops` axis, `costs.problem_flops`; without it
    `flops_per_problem` is null). Columns: model, dataset, config, method, option, n,
    flops_per_problem, problem_id, correct.
    """
    chosen = per_problem.filter(pl.col("method").is_in(SELECTORS))
    n_max = chosen.group_by("cell_id").agg(pl.col("n").max().alias("_n_max"))
    rows = (
        chosen.join(described.select("cell_id", "model", "dataset", "strategy", "config", "prefix_unit"), on="cell_id", how="inner")
        .join(n_max, on="cell_id", how="left")
        .filter(budget_is_run(pl.col("n"), pl.col("_n_max"), pl.col("prefix_unit")))
    )
    if runs is not None:
        cost = prefix_cost(pl.col("flops_scaled"), pl.col("flops_prompt"), pl.col("n"), pl.col("_n_max"), shared_prompt(pl.col("prefix_unit")))
        rows = rows.join(problem_flops(runs, flops), on="cell_id", how="left").with_columns(cost.alias("_flops"))
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


def _fold_points(points: pl.DataFrame, bins: pl.DataFrame, folds: pl.DataFrame, budget: Budget) -> pl.DataFrame:
    """Per-problem rows: model, dataset, bin, fold, budget, option, flops, problem_id, correct.
    At FLOPs budgets an option is `option@n`, competing at every budget its FLOPs fit under."""
    labelled = points.join(
        bins.select("model", "dataset", "problem_id", pl.col("bin").cast(pl.String)),
        on=["model", "dataset", "problem_id"],
        how="inner",
    ).join(folds, on="problem_id", how="inner")
    labelled = labelled.select(
        "model", "dataset", "bin", "fold", "option", "n", pl.col("flops_per_problem").alias("flops"), "problem_id", "correct"
    )  # fmt: skip
    if budget == "n":
        return labelled.with_columns(pl.col("n").cast(pl.Float64).alias("budget")).drop("n")
    option_n = (pl.col("option") + "@" + pl.col("n").cast(pl.String)).alias("option")
    labelled = labelled.filter(pl.col("flops").is_not_null()).with_columns(option_n).drop("n")
    grid = flops_grid(labelled.select("model", "dataset", "flops").unique())
    fits = pl.col("flops") <= pl.col("budget") * (1 + 1e-9)
    return labelled.join(grid, on=["model", "dataset"], how="inner").filter(fits)


def _fold_stats(rows: pl.DataFrame) -> pl.DataFrame:
    """model, dataset, bin, fold, budget, option, flops, hits, count (sum and number of verdicts)."""
    return rows.group_by("model", "dataset", "bin", "fold", "budget", "option").agg(
        pl.col("correct").sum().alias("hits"),
        pl.len().cast(pl.Int64).alias("count"),
        pl.col("flops").first(),
    )


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


def _evaluate(rows: pl.DataFrame, choice: pl.DataFrame, keys: list[str], prefix: str) -> pl.DataFrame:
    """Per problem, the verdict of the option chosen on the other fold: model, dataset, bin,
    budget, problem_id, <prefix>_correct, <prefix>_flops, <prefix>_chosen_on."""
    picked = choice.with_columns((1 - pl.col("fold")).alias("fold"), pl.col("fold").alias("chosen_on"))
    return rows.join(picked, on=[*keys, "fold", "option"], how="inner").select(
        "model", "dataset", "bin", "budget", "problem_id",
        pl.col("correct").alias(f"{prefix}_correct"), pl.col("flops").alias(f"{prefix}_flops"),
        pl.col("option").alias(f"{prefix}_option"), pl.col("chosen_on").alias(f"{prefix}_chosen_on"),
    )  # fmt: skip


def _summarise(paired: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Accuracies, FLOPs and the paired gain (with 95% intervals) per `by`."""
    d = pl.col("optimal_correct") - pl.col("single_correct")
    out = paired.group_by(by).agg(
        pl.len().cast(pl.Int64).alias("n_problems"),
        pl.col("optimal_correct").mean().alias("optimal_accuracy"),
        pl.col("single_correct").mean().alias("single_accuracy"),
        pl.col("optimal_flops").mean().alias("optimal_flops"),
        pl.col("single_flops").mean().alias("single_flops"),
        d.mean().alias("gain"),
        d.std(ddof=1).alias("_gain_sd"),
    )
    o_low, o_high = wilson_interval(pl.col("optimal_accuracy"), pl.col("n_problems"))
    s_low, s_high = wilson_interval(pl.col("single_accuracy"), pl.col("n_problems"))
    t = pl.col("n_problems").map_elements(lambda k: t975(k - 1) if k > 1 else float("nan"), return_dtype=pl.Float64)
    half = t * pl.col("_gain_sd") / pl.col("n_problems").cast(pl.Float64).sqrt()
    return out.with_columns(
        o_low.alias("optimal_ci_low"), o_high.alias("optimal_ci_high"),
        s_low.alias("single_ci_low"), s_high.alias("single_ci_high"),
        (pl.col("gain") - half).alias("gain_ci_low"), (pl.col("gain") + half).alias("gain_ci_high"),
    ).drop("_gain_sd")  # fmt: skip


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
    optimal_accuracy, single_accuracy, gain, optimal_flops, single_flops (FLOPs per problem of
    the chosen options), optimal_chosen_on_0/1, single_chosen_on_0/1 (the option chosen on each
    fold, hence evaluated on the other), and 95% intervals: `optimal_ci_*`/`single_ci_*` Wilson
    over the problems, `gain_ci_*` the paired t-interval of the per-problem differences.
    """
    folds = assign_folds(points["problem_id"].unique(), fold_seed)
    rows = _fold_points(points, bins, folds, budget)
    stats = _fold_stats(rows)
    per_bin_keys = ["model", "dataset", "bin", "budget", "fold"]
    optimal = _evaluate(rows, _choose(stats, per_bin_keys), ["model", "dataset", "bin", "budget"], "optimal")
    overall = stats.group_by("model", "dataset", "budget", "fold", "option").agg(
        pl.col("hits").sum(), pl.col("count").sum(), pl.col("flops").first()
    )
    single_choice = _choose(overall, ["model", "dataset", "budget", "fold"])
    single = _evaluate(rows, single_choice, ["model", "dataset", "budget"], "single")
    paired = optimal.join(single, on=["model", "dataset", "bin", "budget", "problem_id"], how="inner")
    labels = paired.group_by("model", "dataset", "bin", "budget").agg(
        *[
            pl.col(f"{who}_option").filter(pl.col(f"{who}_chosen_on") == fold).first().alias(f"{who}_chosen_on_{fold}")
            for who in ("optimal", "single")
            for fold in (0, 1)
        ]
    )
    per_bin = _summarise(paired, ["model", "dataset", "bin", "budget"]).join(labels, on=["model", "dataset", "bin", "budget"])
    single_labels = single_choice.group_by("model", "dataset", "budget").agg(
        pl.col("option").filter(pl.col("fold") == 0).first().alias("single_chosen_on_0"),
        pl.col("option").filter(pl.col("fold") == 1).first().alias("single_chosen_on_1"),
    )
    totals = (
        _summarise(paired, ["model", "dataset", "budget"])
        .with_columns(pl.lit(ALL_BINS).alias("bin"), *[pl.lit(None, dtype=pl.String).alias(f"optimal_chosen_on_{f}") for f in (0, 1)])
        .join(single_labels, on=["model", "dataset", "budget"], how="left")
    )
    out = pl.concat([per_bin, totals.select(per_bin.columns)], how="vertical")
    if budget == "n":
        out = out.with_columns(pl.col("budget").cast(pl.Int64))
    bin_order = pl.when(pl.col("bin") == ALL_BINS).then(pl.lit(10**9)).otherwise(pl.col("bin").cast(pl.Int64, strict=False))
    return (
        out.select(*FRONTIER_COLUMNS)
        .with_columns(bin_order.alias("_order"))
        .sort("model", "dataset", "_order", "budget")
        .drop("_order")
    )
