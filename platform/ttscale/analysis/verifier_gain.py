"""Each verifier against the others at equal budgets: its accuracy and its paired gain, with intervals.

Does a verifier pay — the learned one of `ttscale learn` above all (issue 18)? Asked of every
group of options that differ only in their verifier: the same model, dataset, configuration
without the verifier (`cells.describe_cells`' `base_config`: strategy, hyperparameters,
aggregation), selection method and generation budget n, run under two or more verifiers. Per
verifier of such a group:

- `reference`: the best *other* verifier of the group — the most accurate of the others on their
  own problems (ties: the name); for the group's most accurate verifier, the runner-up. Picking
  it on these same problems favours the reference: a gain is understated rather than overstated;
- `accuracy`, `reference_accuracy`: the share of problems answered right (per problem, the mean
  over seeds, as `frontier.frontier_points` pools them) on the `n_problems` problems both ran;
  `ci_low`/`ci_high` the 95% Wilson interval over those problems;
- `gain`: accuracy − reference_accuracy, the mean per-problem difference, with the 95% paired
  t-interval over the problems (`accuracy.t_interval`): both verifiers saw the same problems, so
  the problems' difficulty cancels.

Where the verifier only selects among independent samples (Best-of-N), only naive and weighted
selection at n > 1 read its scores: majority voting and a single sample are the same under every
verifier. Where it steers the search (beam search, DVTS), every selection method and budget
counts. pass@n, an oracle, never does. Pure: frames in, a frame out.
"""

from __future__ import annotations

import polars as pl

from ttscale.analysis.accuracy import t_half_width, wilson_interval
from ttscale.strategy_params import PARAMS_BY_NAME

GAIN_SCHEMA = {
    "model": pl.String,
    "dataset": pl.String,
    "base_config": pl.String,
    "method": pl.String,
    "n": pl.Int64,
    "verifier": pl.String,
    "config": pl.String,
    "n_problems": pl.Int64,
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "reference": pl.String,
    "reference_accuracy": pl.Float64,
    "gain": pl.Float64,
    "gain_ci_low": pl.Float64,
    "gain_ci_high": pl.Float64,
}
GROUP_KEYS = ["model", "dataset", "base_config", "method", "n"]
DEFINITION = (
    "per model, dataset, configuration without its verifier, selection method and budget n run under several verifiers: "
    "accuracy = share of problems right (seeds pooled per problem) on the problems shared with the reference, 95% Wilson "
    "interval over them; reference = the most accurate other verifier there (for the most accurate, the runner-up); "
    "gain = accuracy - reference accuracy in points, 95% paired t-interval over the same problems"
)
"""What the table's numbers are, in one line (the report's settings and the table's note)."""


def _steered() -> list[str]:
    """Strategies whose search reads the verifier (majority voting over them depends on it)."""
    return [name for name, params in PARAMS_BY_NAME.items() if not params.independent_samples]


def verifier_gain(points: pl.DataFrame, described: pl.DataFrame) -> pl.DataFrame:
    """`GAIN_SCHEMA` rows, sorted by group then accuracy (best first). `points` as
    `frontier.frontier_points` (model, dataset, config, method, n, problem_id, correct),
    `described` as `cells.describe_cells` (config, base_config, verifier, strategy)."""
    configs = (
        described.filter(pl.col("verifier").is_not_null())
        .select("config", "base_config", "verifier", "strategy")
        .unique(subset="config", keep="first")
    )
    steered = pl.col("strategy").is_in(_steered())
    reads_score = ((pl.col("method") != "majority") & (pl.col("n") > 1)) | steered
    rows = (
        points.join(configs, on="config", how="inner")
        .filter((pl.col("method") != "pass") & reads_score)
        .select(*GROUP_KEYS, "verifier", "config", "problem_id", "correct")
    )
    ranked = (
        rows.group_by(*GROUP_KEYS, "verifier")
        .agg(pl.col("correct").mean().alias("_own"))
        .filter(pl.len().over(GROUP_KEYS) > 1)
        .sort([*GROUP_KEYS, "_own", "verifier"], descending=[False] * len(GROUP_KEYS) + [True, False])
        .with_columns(pl.int_range(pl.len()).over(GROUP_KEYS).alias("_rank"))
    )
    if ranked.is_empty():
        return pl.DataFrame(schema=GAIN_SCHEMA)
    best = pl.col("verifier").filter(pl.col("_rank") == 0).first().over(GROUP_KEYS)
    runner_up = pl.col("verifier").filter(pl.col("_rank") == 1).first().over(GROUP_KEYS)
    references = ranked.with_columns(pl.when(pl.col("_rank") == 0).then(runner_up).otherwise(best).alias("reference"))
    theirs = rows.select(*GROUP_KEYS, pl.col("verifier").alias("reference"), "problem_id", pl.col("correct").alias("_ref"))
    paired = (
        rows.join(references.select(*GROUP_KEYS, "verifier", "reference", "_rank"), on=[*GROUP_KEYS, "verifier"])
        .join(theirs, on=[*GROUP_KEYS, "reference", "problem_id"])
        .with_columns((pl.col("correct") - pl.col("_ref")).alias("_d"))
    )
    out = paired.group_by(*GROUP_KEYS, "verifier", "config", "reference", "_rank").agg(
        pl.len().cast(pl.Int64).alias("n_problems"),
        pl.col("correct").mean().alias("accuracy"),
        pl.col("_ref").mean().alias("reference_accuracy"),
        pl.col("_d").mean().alias("gain"),
        pl.col("_d").std(ddof=1).alias("_sd"),
    )
    low, high = wilson_interval(pl.col("accuracy"), pl.col("n_problems"))
    half = t_half_width(pl.col("_sd"), pl.col("n_problems"))
    return (
        out.with_columns(
            low.alias("ci_low"), high.alias("ci_high"),
            (pl.col("gain") - half).alias("gain_ci_low"), (pl.col("gain") + half).alias("gain_ci_high"),
        )  # fmt: skip
        .sort([*GROUP_KEYS, "_rank"])
        .select([pl.col(k).cast(t) for k, t in GAIN_SCHEMA.items()])
    )
