"""Models compared at matched inference compute (Snell et al. 2024, §7; HF blog, Dec 2024).

Each model gets an accuracy-vs-FLOPs frontier: every option (configuration × selection
method) at every real budget is a point (total policy + verifier FLOPs per problem, accuracy
over all problems, mean over seeds); the frontier is the upper envelope — the best accuracy
reachable with at most that much compute. So "1B with search vs 8B greedy" reads off one
chart, and `compare_models` says where the cheaper model overtakes the dearer one:

- `reference_*`: the large model's cheapest point (its greedy / n=1 answer, usually);
- `beats_reference_*`: the small model's cheapest point that is more accurate than that, and
  its FLOPs as a multiple of the reference's (`flops_ratio`);
- `overtakes_at_flops`: the least FLOPs ≥ the large model's cheapest point at which the small
  model's envelope is above the large model's — at matched compute, the small model wins;
  `ahead_until_flops`: the last grid point where it still is (null if it never is).

The envelope is in-sample (best point per FLOPs on all problems); `frontier.compute_optimal`
with `budget="flops"` is the cross-fitted version.
"""

from __future__ import annotations

from itertools import combinations

import polars as pl

MODEL_POINT_COLUMNS = ("model", "dataset", "option", "config", "method", "n", "flops_per_problem", "accuracy")


def model_frontiers(points: pl.DataFrame) -> pl.DataFrame:
    """One row per (model, dataset, option, n) with FLOPs: accuracy, and the upper envelope.

    `points` is `frontier.frontier_points(...)`. Adds `envelope_accuracy` (best accuracy at
    ≤ this point's FLOPs) and `on_frontier` (strictly more accurate than every cheaper point).
    Points without FLOPs are left out.
    """
    per_option = (
        points.filter(pl.col("flops_per_problem").is_not_null())
        .group_by("model", "dataset", "option", "config", "method", "n")
        .agg(pl.col("flops_per_problem").first(), pl.col("correct").mean().alias("accuracy"))
        .sort("model", "dataset", "flops_per_problem", pl.col("accuracy"), "option", descending=[False, False, False, True, False])
    )
    keys = ("model", "dataset")
    best_before = pl.col("accuracy").cum_max().shift(1).over(keys)
    return per_option.with_columns(
        pl.col("accuracy").cum_max().over(keys).alias("envelope_accuracy"),
        (best_before.is_null() | (pl.col("accuracy") > best_before)).alias("on_frontier"),
    ).select(*MODEL_POINT_COLUMNS, "envelope_accuracy", "on_frontier")


def _envelope_at(frontier: pl.DataFrame, grid: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """The envelope of one model evaluated on a FLOPs grid (as-of join backward)."""
    env = (
        frontier.filter(pl.col("on_frontier"))
        .select(
            pl.col("flops_per_problem").alias("flops"),
            pl.col("accuracy").alias(f"{prefix}_accuracy"),
            pl.col("option").alias(f"{prefix}_option"),
            pl.col("n").alias(f"{prefix}_n"),
        )
        .sort("flops")
    )
    return grid.sort("flops").join_asof(env, on="flops", strategy="backward")


COMPARISON_COLUMNS = (
    "dataset",
    "small_model",
    "large_model",
    "reference_option",
    "reference_n",
    "reference_flops",
    "reference_accuracy",
    "beats_reference_option",
    "beats_reference_n",
    "beats_reference_flops",
    "beats_reference_accuracy",
    "flops_ratio",
    "overtakes_at_flops",
    "overtakes_option",
    "overtakes_n",
    "overtakes_accuracy",
    "large_accuracy_there",
    "ahead_until_flops",
    "small_best_accuracy",
    "large_best_accuracy",
)


def compare_models(frontiers: pl.DataFrame, pairs: list[tuple[str, str]] | None = None) -> pl.DataFrame:
    """Where a cheaper model overtakes a dearer one, per dataset and pair (see module docstring).

    `frontiers` is `model_frontiers(...)`. `pairs` lists (small, large) models; by default
    every pair of models on a dataset, the one whose cheapest point costs less being "small".
    """
    rows: list[dict] = []
    for dataset in sorted(set(frontiers["dataset"].to_list())):
        on = frontiers.filter(pl.col("dataset") == dataset)
        cheapest = (
            on.sort("flops_per_problem", pl.col("accuracy"), descending=[False, True])
            .group_by("model", maintain_order=True)
            .first()
        )
        cost = dict(zip(cheapest["model"].to_list(), cheapest["flops_per_problem"].to_list(), strict=True))
        if pairs is None:
            wanted = [tuple(sorted(p, key=lambda m: (cost[m], m))) for p in combinations(sorted(cost), 2)]
        else:
            wanted = [p for p in pairs if p[0] in cost and p[1] in cost]
        for small, large in wanted:
            rows.append(_compare_pair(on, cheapest, dataset, small, large))
    schema = {
        "dataset": pl.String, "small_model": pl.String, "large_model": pl.String,
        "reference_option": pl.String, "reference_n": pl.Int64, "reference_flops": pl.Float64,
        "reference_accuracy": pl.Float64, "beats_reference_option": pl.String, "beats_reference_n": pl.Int64,
        "beats_reference_flops": pl.Float64, "beats_reference_accuracy": pl.Float64, "flops_ratio": pl.Float64,
        "overtakes_at_flops": pl.Float64, "overtakes_option": pl.String, "overtakes_n": pl.Int64,
        "overtakes_accuracy": pl.Float64, "large_accuracy_there": pl.Float64, "ahead_until_flops": pl.Float64,
        "small_best_accuracy": pl.Float64, "large_best_accuracy": pl.Float64,
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def _compare_pair(on: pl.DataFrame, cheapest: pl.DataFrame, dataset: str, small: str, large: str) -> dict:
    s = on.filter(pl.col("model") == small)
    lg = on.filter(pl.col("model") == large)
    ref = cheapest.filter(pl.col("model") == large).row(0, named=True)
    beats = s.filter(pl.col("accuracy") > ref["accuracy"]).sort("flops_per_problem", "option")
    beat = beats.row(0, named=True) if beats.height else None
    grid = (
        pl.concat([s.select("flops_per_problem"), lg.select("flops_per_problem")])
        .unique()
        .filter(pl.col("flops_per_problem") >= ref["flops_per_problem"])
        .rename({"flops_per_problem": "flops"})
    )
    both = _envelope_at(s, grid, "small").join(
        _envelope_at(lg, grid, "large").select("flops", "large_accuracy"), on="flops", how="left"
    )
    ahead = both.filter(pl.col("small_accuracy") > pl.col("large_accuracy")).sort("flops")
    first = ahead.row(0, named=True) if ahead.height else None
    return {
        "dataset": dataset,
        "small_model": small,
        "large_model": large,
        "reference_option": ref["option"],
        "reference_n": ref["n"],
        "reference_flops": ref["flops_per_problem"],
        "reference_accuracy": ref["accuracy"],
        "beats_reference_option": beat["option"] if beat else None,
        "beats_reference_n": beat["n"] if beat else None,
        "beats_reference_flops": beat["flops_per_problem"] if beat else None,
        "beats_reference_accuracy": beat["accuracy"] if beat else None,
        "flops_ratio": beat["flops_per_problem"] / ref["flops_per_problem"] if beat and ref["flops_per_problem"] else None,
        "overtakes_at_flops": first["flops"] if first else None,
        "overtakes_option": first["small_option"] if first else None,
        "overtakes_n": first["small_n"] if first else None,
        "overtakes_accuracy": first["small_accuracy"] if first else None,
        "large_accuracy_there": first["large_accuracy"] if first else None,
        "ahead_until_flops": ahead["flops"].max() if first else None,
        "small_best_accuracy": s["accuracy"].max(),
        "large_best_accuracy": lg["accuracy"].max(),
    }
