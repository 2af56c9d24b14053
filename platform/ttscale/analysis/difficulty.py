"""Problem difficulty bins (Snell et al. 2024, arXiv 2408.03314, §3.2 and §5).

- `oracle`: 5 quantiles of the base model's pass@1, estimated per problem as the mean
  correctness of a reference cell's candidates (the paper uses 2048 samples; we use the
  largest independent-sample cell available).
- `predicted`: 5 quantiles of the verifier's mean final score over the same candidates —
  needs no gold answer, so it can steer a real deployment.
- `level`: the dataset's own levels (MATH 1–5).

Bin 1 is the easiest (highest pass@1 or score), as MATH level 1 is, and bins are computed
per (model, dataset): difficulty is relative to a model. Problems with equal difficulty
share a bin (the bin of their first rank), so when many problems tie — all solved, none
solved — bins hold unequal counts rather than splitting ties by an arbitrary id order.

Default reference cells, per (model, dataset): the cells of an independent-sampling strategy
(best_of_n, majority) with the largest N, pooled across seeds; `predicted` needs scores, so
it takes scored cells only.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from ttscale.analysis.frames import require_columns
from ttscale.errors import SpecError

BinKind = Literal["oracle", "predicted", "level"]
BIN_KINDS = ("oracle", "predicted", "level")
SAMPLING_STRATEGIES = ("best_of_n", "majority")
BINS_COLUMNS = ("model", "dataset", "problem_id", "difficulty", "bin")


def problem_stats(candidates: pl.DataFrame) -> pl.DataFrame:
    """cell_id, problem_id, n_total, n_correct, n_scored, mean_score: what bins need from candidates.

    `verdicts.problem_verdicts(...).problem_stats` is the same frame, computed on the way.
    """
    return candidates.group_by("cell_id", "problem_id").agg(
        pl.len().cast(pl.Int64).alias("n_total"),
        pl.col("correct").fill_null(False).sum().cast(pl.Int64).alias("n_correct"),
        pl.col("score").is_not_null().sum().cast(pl.Int64).alias("n_scored"),
        pl.col("score").mean().alias("mean_score"),
    )


def _as_stats(frame: pl.DataFrame) -> pl.DataFrame:
    return frame if "n_total" in frame.columns else problem_stats(frame)


def reference_cells(described: pl.DataFrame, stats: pl.DataFrame, *, scored: bool = False) -> pl.DataFrame:
    """cell_id, model, dataset of the default reference cells (see module docstring).

    `stats` is `problem_stats(...)` (or raw candidates). Falls back to any strategy when a
    (model, dataset) has no independent-sampling cell.
    """
    stats = _as_stats(stats)
    present = stats.group_by("cell_id").agg(pl.col("mean_score").is_not_null().any().alias("_scored"))
    cells = described.join(present, on="cell_id", how="inner")
    if scored:
        cells = cells.filter(pl.col("_scored"))
    keys = ("model", "dataset")
    preference = pl.col("strategy").is_in(SAMPLING_STRATEGIES)
    return (
        cells.filter(preference == preference.max().over(keys))
        .filter(pl.col("n_cell") == pl.col("n_cell").max().over(keys))
        .select("cell_id", "model", "dataset")
        .sort("model", "dataset", "cell_id")
    )


def quantile_bins(scores: pl.DataFrame, *, n_bins: int = 5, keys: tuple[str, ...] = ("model", "dataset")) -> pl.DataFrame:
    """Add `bin` (1..n_bins, 1 = highest `difficulty` value = easiest) within each `keys` group.

    bin = floor((r - 1) · n_bins / count) + 1 with r the 1-based rank of the problem by
    descending `difficulty`, ties taking their lowest rank.
    """
    if n_bins < 1:
        raise SpecError(f"n_bins: must be >= 1, got {n_bins}")
    rank = pl.col("difficulty").rank("min", descending=True).over(keys).cast(pl.Int64)
    count = pl.len().over(keys).cast(pl.Int64)
    return scores.with_columns((((rank - 1) * n_bins) // count + 1).alias("bin"))


def difficulty_bins(
    stats: pl.DataFrame,
    described: pl.DataFrame,
    problems: pl.DataFrame | None = None,
    *,
    how: BinKind = "oracle",
    n_bins: int = 5,
    reference: list[str] | None = None,
) -> pl.DataFrame:
    """model, dataset, problem_id, difficulty, bin for every problem of every (model, dataset).

    `stats` is `problem_stats(candidates)` (or the candidates themselves). `difficulty` is the estimated pass@1 (`oracle`), mean verifier score (`predicted`) or the
    level (`level`). `reference` overrides the default reference cells by cell_id; each
    cell's candidates count for its own (model, dataset).
    """
    if how not in BIN_KINDS:
        raise SpecError(f"bins: unknown {how!r}; allowed: {', '.join(BIN_KINDS)}")
    stats = _as_stats(stats)
    if how == "level":
        return _level_bins(stats, described, problems)
    if reference is None:
        ref = reference_cells(described, stats, scored=how == "predicted")
    else:
        ref = described.filter(pl.col("cell_id").is_in(reference)).select("cell_id", "model", "dataset")
        missing = sorted(set(reference) - set(ref["cell_id"].to_list()))
        if missing:
            raise SpecError(f"reference: unknown cell id(s) {', '.join(missing)}")
    # Pooled over the reference cells (seeds): correct / total samples, or the mean score
    # weighted by each problem's scored samples.
    if how == "oracle":
        value = pl.col("n_correct").sum() / pl.col("n_total").sum()
    else:
        value = (pl.col("mean_score") * pl.col("n_scored")).sum() / pl.col("n_scored").sum()
    per_problem = (
        stats.join(ref, on="cell_id", how="inner")
        .group_by("model", "dataset", "problem_id")
        .agg(value.cast(pl.Float64).alias("difficulty"))
    )
    if how == "predicted":
        if per_problem.filter(pl.col("difficulty").is_not_null()).height == 0:
            raise SpecError("bins: `predicted` needs candidates with verifier scores; none of the reference cells has any")
        per_problem = per_problem.filter(pl.col("difficulty").is_not_null())
    return quantile_bins(per_problem, n_bins=n_bins).select(*BINS_COLUMNS).sort("model", "dataset", "bin", "problem_id")


def _level_bins(stats: pl.DataFrame, described: pl.DataFrame, problems: pl.DataFrame | None) -> pl.DataFrame:
    if problems is None:
        raise SpecError("bins: `level` needs the problems (dataset, problem_id, level)")
    require_columns(problems, ("dataset", "problem_id", "level"), "problems")
    pairs = (
        stats.select("cell_id", "problem_id")
        .unique()
        .join(described.select("cell_id", "model", "dataset"), on="cell_id", how="inner")
        .select("model", "dataset", "problem_id")
        .unique()
    )
    levels = problems.select("dataset", "problem_id", pl.col("level").cast(pl.Int64))
    out = pairs.join(levels, on=["dataset", "problem_id"], how="left")
    if out.height and out["level"].null_count() == out.height:
        datasets = ", ".join(sorted(set(out["dataset"].to_list())))
        raise SpecError(f"bins: `level` needs problem levels; dataset {datasets} has none (use oracle or predicted)")
    return (
        out.filter(pl.col("level").is_not_null())
        .with_columns(pl.col("level").cast(pl.Float64).alias("difficulty"), pl.col("level").alias("bin"))
        .select(*BINS_COLUMNS)
        .sort("model", "dataset", "bin", "problem_id")
    )
