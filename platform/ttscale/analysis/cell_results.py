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
from ttscale.analysis.costs import prefix_cost, shared_prompt
from ttscale.spec import as_cell
from ttscale.strategy_params import PARAMS_BY_NAME, StrategyParams

SCALED_COLUMNS = ("n_generated_tokens", "n_verifier_tokens", "policy_flops", "verifier_flops")
"""Totals that grow with the samples: the first n of N cost n/N of them."""
PROMPT_COLUMNS = ("n_prompt_tokens", "n_prompt_tokens_computed")
"""Totals of prompts: fixed when all samples share the prompt (`costs.prefix_cost`)."""
TOTAL_COLUMNS = (*PROMPT_COLUMNS, *SCALED_COLUMNS, "policy_flops_computed")


def _strategy(row: dict) -> StrategyParams:
    """A cell's strategy parameters from its stored spec, or its strategy's defaults."""
    return as_cell(row["spec"]).strategy if row.get("spec") else PARAMS_BY_NAME[row["strategy"]]()


def _sources(cells: pl.DataFrame) -> pl.DataFrame:
    """cell_id, gen_id (the cell whose candidates it is measured on), n (its budget), n_gen,
    prefix_unit (of its strategy)."""
    gen = cells.select(pl.col("cell_id").alias("gen_id"), pl.col("n").alias("n_gen"))
    units = [_strategy(row).prefix_unit for row in cells.to_dicts()]
    return (
        cells.select("cell_id", "strategy", "n", pl.coalesce("source_cell_id", "cell_id").alias("gen_id"),
                     *(["spec"] if "spec" in cells.columns else []))
        .with_columns(pl.Series("prefix_unit", units, dtype=pl.Int64))
        .join(gen, on="gen_id", how="left")
    )


def _judged(row: dict) -> list[int]:
    """A cell's judged budgets from its stored spec (strategy parameters and fidelity), or from its
    strategy's defaults when the frame carries no spec."""
    if row.get("spec"):
        return as_cell(row["spec"]).judged_budgets(row["n"])
    return _strategy(row).judged_budgets(row["n"])


def cell_accuracy_at(cells: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """cell_id, n, method, accuracy: the mean verdict over the cell's problems at each budget the
    cell judges (`CellSpec.judged_budgets`) up to its N; pass is the mean
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
            for n in _judged(row)
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
    `store.read_problem_runs` of the generating cells. total_flops is on the charged axis;
    policy_flops_computed says what the engine computed (`analysis.costs`)."""
    sums = runs.group_by("cell_id").agg(
        pl.len().cast(pl.Int64).alias("n_problems"),
        # An unrecorded count (null) leaves the total unknown rather than smaller.
        *[pl.when(pl.col(c).is_null().any()).then(None).otherwise(pl.col(c).cast(pl.Float64).sum()).alias(c) for c in TOTAL_COLUMNS],
        pl.col("elapsed_s").sum().alias("wall_time_s"),
    )
    served = pl.col("gen_id") != pl.col("cell_id")
    n, n_gen, shared = pl.col("n"), pl.col("n_gen"), shared_prompt(pl.col("prefix_unit"))
    prompt_flops = pl.col("policy_flops_computed") - pl.col("policy_flops")
    return (
        _sources(cells)
        .join(sums.rename({"cell_id": "gen_id"}), on="gen_id", how="left")
        .with_columns(
            *[prefix_cost(pl.col(c), 0.0, n, n_gen, shared).alias(c) for c in SCALED_COLUMNS],
            *[prefix_cost(pl.lit(0.0), pl.col(c), n, n_gen, shared).alias(c) for c in PROMPT_COLUMNS],
            prefix_cost(pl.col("policy_flops"), prompt_flops, n, n_gen, shared).alias("policy_flops_computed"),
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
