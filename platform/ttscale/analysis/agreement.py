"""Published verdicts against ttscale's: what `ttscale import` prints after reading a
search-and-learn file, and what the report and the audit page show beside the reference's numbers.

The reference's own predictions (`pred_naive@k`, `pred_weighted@k`, `pred_maj@k`, `pred`) are
stored as verdicts of source `published`, graded by ttscale; ttscale judges the same candidates
itself (source `ttscale`). Where the two disagree on a problem, one of them picked another answer
or graded it differently — the rows to read.
"""

from __future__ import annotations

import polars as pl

AGREEMENT_COLUMNS = ("cell_id", "method", "n", "n_problems", "published_accuracy", "ttscale_accuracy", "n_differ")
_AS_TTSCALE = {"pred": "naive"}
"""The reference's `pred` (its pick at N) is compared with ttscale's naive selection at N."""


def _paired(verdicts: pl.DataFrame) -> pl.DataFrame:
    published = verdicts.filter(pl.col("source") == "published").with_columns(
        pl.col("method").replace(_AS_TTSCALE).alias("_as")
    )
    ours = verdicts.filter(pl.col("source") == "ttscale").select(
        "cell_id", "problem_id", pl.col("method").alias("_as"), "n",
        pl.col("answer").alias("ttscale_answer"), pl.col("correct").alias("ttscale_correct"),
    )  # fmt: skip
    return published.join(ours, on=["cell_id", "problem_id", "_as", "n"], how="inner")


def agreement(verdicts: pl.DataFrame) -> pl.DataFrame:
    """Per cell, published method and budget: accuracy of the published predictions (graded by
    ttscale), of ttscale's own selection, and how many problems differ. Empty without published
    verdicts. `verdicts` as `store.read_verdicts`."""
    paired = _paired(verdicts)
    return (
        paired.group_by("cell_id", "method", "n")
        .agg(
            pl.len().cast(pl.Int64).alias("n_problems"),
            pl.col("correct").mean().alias("published_accuracy"),
            pl.col("ttscale_correct").mean().alias("ttscale_accuracy"),
            (pl.col("correct") != pl.col("ttscale_correct")).sum().cast(pl.Int64).alias("n_differ"),
        )
        .select(*AGREEMENT_COLUMNS)
        .sort("cell_id", "method", "n")
    )


def disagreements(verdicts: pl.DataFrame) -> pl.DataFrame:
    """The problems where a published verdict and ttscale's differ in correctness: cell_id,
    problem_id, method, n, published answer and correctness, ttscale's."""
    return (
        _paired(verdicts)
        .filter(pl.col("correct") != pl.col("ttscale_correct"))
        .select("cell_id", "problem_id", "method", "n", pl.col("answer").alias("published_answer"),
                pl.col("correct").alias("published_correct"), "ttscale_answer", "ttscale_correct")  # fmt: skip
        .sort("cell_id", "method", "n", "problem_id")
    )
