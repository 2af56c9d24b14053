"""Each cell's own numbers — accuracy per selection method at each budget, tokens, FLOPs and
wall time — the one home of what MLflow logs per cell and what `ttscale run` and
`ttscale sweep run` print.

A cell served by a larger budget's generations (`source_cell_id`) is measured on its source's
first n candidates: accuracy from the source's verdicts at budgets up to its own N, tokens and
FLOPs as `prefix_cost` charges the first n of N, and no wall time of its own (it ran nothing).
"""

from __future__ import annotations

import polars as pl

from ttscale.analysis.verdicts import problem_verdicts
from ttscale.strategy_params import PARAMS_BY_NAME

TOTAL_COLUMNS = ("n_prompt_tokens", "n_generated_tokens", "n_verifier_tokens", "policy_flops", "verifier_flops")


def prefix_cost(value: pl.Expr, n: pl.Expr | int, n_cell: pl.Expr | int) -> pl.Expr:
    """What the first `n` of a cell's `n_cell` candidates cost, from what the whole cell cost:
    value · n / N — exact for independent samples and for whole DVTS subtrees (the only
    strategies whose prefixes are runs), and exact at n = N for every strategy."""
    return value * n / n_cell


def _sources(cells: pl.DataFrame) -> pl.DataFrame:
    """cell_id, gen_id (the cell whose candidates it is measured on), n (its budget), n_gen."""
    gen = cells.select(pl.col("cell_id").alias("gen_id"), pl.col("n").alias("n_gen"))
    return (
        cells.select("cell_id", "strategy", "n", pl.coalesce("source_cell_id", "cell_id").alias("gen_id"))
        .join(gen, on="gen_id", how="left")
    )


def cell_accuracy_at(cells: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """cell_id, n, method, accuracy: the mean verdict over the cell's problems at each budget the
    cell's strategy judges (`StrategyParams.judged_budgets`) up to its N; pass is the mean
    pass@n estimate. `cells` as `store.read_cells` (with its sources), `candidates` of the
    generating cells."""
    sources = _sources(cells)
    n_cells = dict(zip(sources["gen_id"].to_list(), sources["n_gen"].to_list(), strict=True))
    per_problem = problem_verdicts(candidates, n_cells={k: int(v) for k, v in n_cells.items() if v is not None}).per_problem
    acc = per_problem.group_by("cell_id", "n", "method").agg(pl.col("correct").mean().alias("accuracy"))
    judged = pl.DataFrame(
        [
            (row["cell_id"], row["gen_id"], n)
            for row in sources.iter_rows(named=True)
            for n in PARAMS_BY_NAME[row["strategy"]].judged_budgets(row["n"])
        ],
        schema={"cell_id": pl.String, "gen_id": pl.String, "n": pl.Int64},
        orient="row",
    )
    return (
        judged.join(acc.rename({"cell_id": "gen_id"}), on=["gen_id", "n"], how="inner")
        .select("cell_id", "n", "method", "accuracy")
        .sort("cell_id", "n", "method")
    )


def cell_totals(cells: pl.DataFrame, runs: pl.DataFrame) -> pl.DataFrame:
    """cell_id, n_problems, the token and FLOPs totals of `TOTAL_COLUMNS`, total_flops,
    flops_per_problem, wall_time_s and problems_per_s (null for served cells). `runs` as
    `store.read_problem_runs` of the generating cells."""
    sums = runs.group_by("cell_id").agg(
        pl.len().cast(pl.Int64).alias("n_problems"),
        *[pl.col(c).cast(pl.Float64).sum() for c in TOTAL_COLUMNS],
        pl.col("elapsed_s").sum().alias("wall_time_s"),
    )
    served = pl.col("gen_id") != pl.col("cell_id")
    return (
        _sources(cells)
        .join(sums.rename({"cell_id": "gen_id"}), on="gen_id", how="left")
        .with_columns(
            *[prefix_cost(pl.col(c).fill_null(0.0), pl.col("n"), pl.col("n_gen")).alias(c) for c in TOTAL_COLUMNS],
            pl.col("n_problems").fill_null(0),
            pl.when(served).then(None).otherwise(pl.col("wall_time_s")).alias("wall_time_s"),
        )
        .with_columns(
            (pl.col("policy_flops") + pl.col("verifier_flops")).alias("total_flops"),
        )
        .with_columns(
            pl.when(pl.col("n_problems") > 0).then(pl.col("total_flops") / pl.col("n_problems")).otherwise(0.0).alias("flops_per_problem"),
            pl.when(pl.col("wall_time_s") > 0).then(pl.col("n_problems") / pl.col("wall_time_s")).alias("problems_per_s"),
        )
        .select("cell_id", "n_problems", *TOTAL_COLUMNS, "total_flops", "flops_per_problem", "wall_time_s", "problems_per_s")
        .sort("cell_id")
    )
