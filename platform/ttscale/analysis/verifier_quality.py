"""How well a cell's verifier separates right from wrong candidates.

Selection by score (naive, weighted, beam search's pruning) can only beat majority voting if
the scores track correctness. A flat verifier — every candidate scored alike — silently turns
weighted selection into majority and beam search into a random search, so every report shows,
per cell with a verifier (candidates with a score and a verdict only):

- `auc`: the probability that a random correct candidate outscores a random wrong one, ties
  counted half (ROC AUC, the Mann-Whitney statistic), over all the cell's candidates pooled;
  0.5 is no signal;
- `auc_within`: the same within each problem, averaged over the problems that have both right
  and wrong candidates — what selection among one problem's candidates sees;
- `tied_pairs`: the share of same-problem candidate pairs with equal scores, averaged over
  problems (1.0: the verifier cannot rank anything).
"""

from __future__ import annotations

import polars as pl

QUALITY_SCHEMA = {
    "cell_id": pl.String,
    "verifier": pl.String,
    "aggregation": pl.String,
    "n_candidates": pl.Int64,
    "n_correct": pl.Int64,
    "auc": pl.Float64,
    "n_problems_mixed": pl.Int64,
    "auc_within": pl.Float64,
    "tied_pairs": pl.Float64,
}


def _auc(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Mann-Whitney AUC per group of `by`: (rank sum of correct − n₊(n₊+1)/2) / (n₊·n₋), with
    average ranks for ties; null where a group lacks either class."""
    ranked = frame.with_columns(pl.col("score").rank("average").over(by).alias("_rank"))
    return ranked.group_by(by).agg(
        pl.col("correct").sum().cast(pl.Int64).alias("_pos"),
        (~pl.col("correct")).sum().cast(pl.Int64).alias("_neg"),
        pl.col("_rank").filter(pl.col("correct")).sum().alias("_ranks"),
    ).with_columns(
        pl.when((pl.col("_pos") > 0) & (pl.col("_neg") > 0))
        .then((pl.col("_ranks") - pl.col("_pos") * (pl.col("_pos") + 1) / 2) / (pl.col("_pos") * pl.col("_neg")))
        .otherwise(None)
        .alias("auc")
    )


def verifier_quality(cells: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """One row per cell with a verifier (`QUALITY_SCHEMA`). `cells` as `store.read_cells`
    (cell_id, verifier, aggregation), `candidates` as `store.read_candidates` (score, correct)."""
    scored_cells = cells.filter(pl.col("verifier").is_not_null()).select("cell_id", "verifier", "aggregation")
    scored = candidates.filter(pl.col("score").is_not_null() & pl.col("correct").is_not_null()).join(
        scored_cells.select("cell_id"), on="cell_id"
    ).select("cell_id", "problem_id", "score", "correct")
    if scored.is_empty():
        return pl.DataFrame(schema=QUALITY_SCHEMA)
    pooled = _auc(scored, ["cell_id"]).select(
        "cell_id", (pl.col("_pos") + pl.col("_neg")).alias("n_candidates"), pl.col("_pos").alias("n_correct"), "auc"
    )
    within = (
        _auc(scored, ["cell_id", "problem_id"])
        .group_by("cell_id")
        .agg(pl.col("auc").is_not_null().sum().cast(pl.Int64).alias("n_problems_mixed"), pl.col("auc").mean().alias("auc_within"))
    )
    ties = (
        scored.group_by("cell_id", "problem_id", "score")
        .agg(pl.len().alias("k"))
        .group_by("cell_id", "problem_id")
        .agg((pl.col("k") * (pl.col("k") - 1)).sum().alias("_tied"), pl.col("k").sum().alias("_n"))
        .filter(pl.col("_n") > 1)
        .group_by("cell_id")
        .agg((pl.col("_tied") / (pl.col("_n") * (pl.col("_n") - 1))).mean().alias("tied_pairs"))
    )
    return (
        scored_cells.join(pooled, on="cell_id")
        .join(within, on="cell_id", how="left")
        .join(ties, on="cell_id", how="left")
        .with_columns(pl.col("n_problems_mixed").fill_null(0))
        .select([pl.col(k).cast(t) for k, t in QUALITY_SCHEMA.items()])
        .sort("cell_id")
    )
