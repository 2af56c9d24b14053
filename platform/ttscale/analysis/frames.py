"""Column contracts of the frames analysis reads (as `ttscale.store.read_*` returns them).

Analysis checks a frame's columns once at its entry points, so a frame that lacks one fails
with a one-line `DataError` naming the frame and the columns, not deep inside a polars plan.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from ttscale.errors import DataError
from ttscale.tree import ShardOutcome, Verdict

CANDIDATE_COLUMNS = ("cell_id", "problem_id", "idx", "answer_class", "correct", "score")
"""Columns of `read_candidates` that selection needs (answer text is not: classes decide)."""
PROBLEM_RUN_COLUMNS = ("cell_id", "problem_id", "policy_flops", "verifier_flops")
"""Columns of `read_problem_runs` that compute accounting needs."""
CELL_COLUMNS = ("cell_id", "model", "dataset", "strategy", "n", "seed")
"""Columns a cells frame needs (see `ttscale.analysis.cells.describe_cells`)."""
PROBLEM_COLUMNS = ("dataset", "problem_id", "level")


def require_columns(frame: pl.DataFrame | pl.LazyFrame, columns: Iterable[str], name: str) -> None:
    """Raise DataError if `frame` lacks any of `columns`."""
    have = set(frame.collect_schema().names()) if isinstance(frame, pl.LazyFrame) else set(frame.columns)
    missing = [c for c in columns if c not in have]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}; have {', '.join(sorted(have))}")


def candidates_frame(outcomes: Iterable[ShardOutcome]) -> pl.DataFrame:
    """The `read_candidates` columns analysis needs, from shard outcomes not (yet) stored.

    Lets a runner, importer or test analyse results without a database; the store's reader
    returns the same columns for stored ones.
    """
    rows = [
        (o.cell_id, r.problem_id, c.index, c.answer, c.answer_class, c.correct, c.score)
        for o in outcomes
        for r in o.results
        for c in r.candidates
    ]
    schema = {
        "cell_id": pl.String,
        "problem_id": pl.String,
        "idx": pl.Int64,
        "answer": pl.String,
        "answer_class": pl.Int64,
        "correct": pl.Boolean,
        "score": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def verdicts_frame(cell_id: str, verdicts: Iterable[Verdict]) -> pl.DataFrame:
    """The `read_verdicts` columns of verdicts not (yet) stored."""
    schema = {"cell_id": pl.String, "problem_id": pl.String, "source": pl.String, "method": pl.String,
              "n": pl.Int64, "answer": pl.String, "correct": pl.Float64}  # fmt: skip
    rows = [(cell_id, v.problem_id, v.source, v.method, v.n, v.answer, float(v.correct)) for v in verdicts]
    return pl.DataFrame(rows, schema=schema, orient="row")
