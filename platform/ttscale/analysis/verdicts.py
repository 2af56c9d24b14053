"""Which answer each selection method picks among the first n candidates, for every problem at once.

This is `ttscale.selection.select` (one problem, one method) vectorised over many cells and
problems with polars; a test checks that the two agree. Rules (search-and-learn
`sal/utils/math.py` and `score.py`):

- `naive`: the candidate with the highest aggregated `score`; ties → first in order.
- `weighted`: the answer class with the largest sum of scores; ties → the class that occurs first.
- `majority`: the most frequent answer class; ties → the class that occurs first.
- `pass`: the unbiased pass@n estimate from all of the problem's N samples (`passk`).

Unparsed candidates (`answer_class` -1) never win `weighted`/`majority`; when every candidate
among the first n is unparsed, the verdict points at the first candidate and is wrong. As in
`ttscale.selection`, a null score counts -1.0 for `naive` and weighs 1.0 in a `weighted` sum;
a cell with no score at all gets no `naive`/`weighted` rows (there was no verifier to select
with). `correct` of a class is that of its first candidate (grading puts equivalent answers in
one class, so they agree).

Budgets: for a cell whose problems have up to N candidates, every power of two up to N and
N itself (the reference scores 1, 2, 4, ..., N). Subsampling modes:
- `prefix`: the first n candidates by `idx`, exactly as the reference scores Best-of-N and
  DVTS (the first n of a DVTS run are n/M whole subtrees);
- `bootstrap`: `n_draws` random orderings of each problem's candidates; the first n of an
  ordering is a uniform subset of size n drawn without replacement, and "first" for ties
  means first drawn. Orderings come from a stable hash of (seed, draw, cell, problem, idx),
  so they do not depend on row order, other cells or the polars version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from ttscale.analysis.frames import CANDIDATE_COLUMNS, require_columns
from ttscale.analysis.passk import with_pass_at_k
from ttscale.tree import ProblemResult, Verdict

Mode = Literal["prefix", "bootstrap"]
MODES = ("prefix", "bootstrap")
METHODS = ("naive", "weighted", "majority", "pass")
"""Selection methods, in display order; `pass` is the oracle."""
SELECTORS = ("naive", "weighted", "majority")
"""The methods that pick one answer without looking at the gold answer."""
_NULL_NAIVE_SCORE = -1.0
_NULL_WEIGHT = 1.0


def budgets(n_max: int) -> list[int]:
    """Every power of two up to `n_max`, and `n_max` itself: 12 → [1, 2, 4, 8, 12]."""
    if n_max < 1:
        return []
    out = [1 << k for k in range(n_max.bit_length()) if (1 << k) <= n_max]
    if out[-1] != n_max:
        out.append(n_max)
    return out


@dataclass(frozen=True)
class Verdicts:
    """Per-problem verdicts and per-draw cell accuracies.

    `per_problem`: cell_id, problem_id, n, method, correct (f64: 0/1 in prefix mode, the
    mean over draws in bootstrap mode, the pass@n probability for `pass`), idx (the chosen
    candidate's `idx` in prefix mode, else null).
    `per_draw`: cell_id, n, method, draw, accuracy (mean of `correct` over the cell's
    problems in one draw; one draw in prefix mode and for `pass`).
    """

    per_problem: pl.DataFrame
    per_draw: pl.DataFrame
    mode: Mode
    n_draws: int
    problem_stats: pl.DataFrame | None = None
    """cell_id, problem_id, n_total, n_correct, n_scored, mean_score over all of the problem's
    candidates (`difficulty.problem_stats`), computed on the way."""


def _groups(candidates: pl.DataFrame, n_cells: Mapping[str, int] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Integer-coded (cell, problem) groups and compact candidate rows sorted by (gid, idx).

    groups: gid, cell_id, problem_id, n_total, n_correct, mean_score, n_scored, n_cell, scored (gid in id order).
    rows: gid, idx, cls, correct, score, n_cell, pos (rank by idx, from 0).
    `n_cell` is the cell's budget N from `n_cells` (cell id → N) where given, else the most
    candidates any of its problems has (a search may return fewer than N for every problem).
    Strings are touched once, to code the few distinct (cell, problem) pairs; every sort and
    group-by after that is on integers.
    """
    base = candidates.select(
        pl.col("cell_id").cast(pl.String),
        pl.col("problem_id").cast(pl.String),
        pl.col("idx").cast(pl.Int64),
        pl.col("answer_class").fill_null(-1).cast(pl.Int32).alias("cls"),
        pl.col("correct").fill_null(False).cast(pl.Boolean),
        pl.col("score").cast(pl.Float64),
    )
    keys, coded = _code_groups(base)
    per_group = coded.group_by("gid").agg(
        pl.len().cast(pl.Int64).alias("n_total"),
        pl.col("correct").sum().cast(pl.Int64).alias("n_correct"),
        pl.col("score").is_not_null().any().alias("_any_score"),
        pl.col("score").mean().alias("mean_score"),
        pl.col("score").is_not_null().sum().cast(pl.Int64).alias("n_scored"),
    )
    groups = (
        keys.join(per_group, on="gid", how="left")
        .with_columns(
            pl.col("n_total").max().over("cell_id").alias("n_cell"),
            pl.col("_any_score").any().over("cell_id").alias("scored"),
        )
        .drop("_any_score")
        .sort("gid")
    )
    if n_cells:
        given = pl.DataFrame({"cell_id": list(n_cells), "_given": list(n_cells.values())}, schema={"cell_id": pl.String, "_given": pl.Int64})
        groups = groups.join(given, on="cell_id", how="left", maintain_order="left").with_columns(
            pl.coalesce("_given", "n_cell").alias("n_cell")
        ).drop("_given")
    n_cell = groups.select("gid", "n_cell")
    rows = coded.join(n_cell, on="gid", how="left", maintain_order="left").with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("gid").alias("pos")
    )
    return groups, rows


def _code_groups(base: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """keys (cell_id, problem_id, gid in sorted id order) and rows (gid, idx, cls, correct,
    score) sorted by (gid, idx).

    Fast path for frames whose (cell, problem) groups are contiguous — what the store's
    readers return (ordered by cell, problem, idx): runs are found by comparing each row
    with the previous one, and only the few run heads are sorted by their string ids. Any
    other order falls back to a hash join on the ids.
    """
    change = ((pl.col("cell_id") != pl.col("cell_id").shift(1)) | (pl.col("problem_id") != pl.col("problem_id").shift(1))).fill_null(True)
    runs = base.with_columns(change.alias("_head")).with_columns((pl.col("_head").cum_sum() - 1).cast(pl.UInt32).alias("_run"))
    heads = runs.filter(pl.col("_head")).select("cell_id", "problem_id", "_run")
    fields = ["gid", "idx", "cls", "correct", "score"]
    if heads.select("cell_id", "problem_id").n_unique() == heads.height:
        keys = heads.sort("cell_id", "problem_id").with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("gid"))
        to_gid = keys.sort("_run")["gid"].to_numpy()
        gid = pl.Series("gid", to_gid[runs["_run"].to_numpy()], dtype=pl.UInt32)
        coded = runs.with_columns(gid).select(fields)
        return keys.select("cell_id", "problem_id", "gid"), _sorted_by_gid_idx(coded)
    keys = (
        base.select("cell_id", "problem_id")
        .unique()
        .sort("cell_id", "problem_id")
        .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("gid"))
    )
    coded = base.join(keys, on=["cell_id", "problem_id"], how="left").select(fields).sort("gid", "idx")
    return keys, coded


def _sorted_by_gid_idx(coded: pl.DataFrame) -> pl.DataFrame:
    """`coded` sorted by (gid, idx); a frame that already is (the store's order) is not re-sorted."""
    if coded.height and (idx_max := coded["idx"].max()) is not None and 0 <= coded["idx"].min() and idx_max < 2**31:
        key = coded["gid"].cast(pl.UInt64) * (2**32) + coded["idx"].cast(pl.UInt64)
        if key.is_sorted():
            return coded
    return coded.sort("gid", "idx")


def _applies(n: int) -> pl.Expr:
    """Rows of cells whose budget list contains n (n ≤ N, and n a power of two or N itself)."""
    is_pow2 = n & (n - 1) == 0
    return (pl.col("n_cell") >= n) if is_pow2 else (pl.col("n_cell") == n)


def _select_at(rows: pl.LazyFrame, n: int) -> pl.LazyFrame:
    """Verdicts of naive/weighted/majority for every group among rows with pos < n.

    `rows` must be sorted by (gid, pos): polars keeps row order within a group, and
    `arg_max` returns the first maximum, which gives the first-occurrence tie rule.
    """
    sub = rows.filter(_applies(n) & (pl.col("pos") < n))
    naive_score = pl.col("score").fill_null(_NULL_NAIVE_SCORE)
    naive = sub.group_by("gid").agg(
        pl.col("idx").get(naive_score.arg_max()).alias("naive_idx"),
        pl.col("correct").get(naive_score.arg_max()).alias("naive_correct"),
        pl.col("idx").first().alias("_first_idx"),
    )
    classes = (
        sub.filter(pl.col("cls") >= 0)
        .group_by("gid", "cls")
        .agg(
            pl.col("pos").first().alias("first_pos"),
            pl.col("idx").first().alias("first_idx"),
            pl.col("correct").first().alias("first_correct"),
            pl.len().alias("count"),
            pl.col("score").fill_null(_NULL_WEIGHT).sum().alias("wsum"),
        )
        .sort("gid", "first_pos")
        .group_by("gid")
        .agg(
            pl.col("first_idx").get(pl.col("count").arg_max()).alias("majority_idx"),
            pl.col("first_correct").get(pl.col("count").arg_max()).alias("majority_correct"),
            pl.col("first_idx").get(pl.col("wsum").arg_max()).alias("weighted_idx"),
            pl.col("first_correct").get(pl.col("wsum").arg_max()).alias("weighted_correct"),
        )
    )
    # Nothing parsed among the first n: the first candidate, and wrong (`ttscale.selection`).
    fallback = [
        expr
        for method in ("majority", "weighted")
        for expr in (
            pl.col(f"{method}_idx").fill_null(pl.col("_first_idx")),
            pl.col(f"{method}_correct").fill_null(False),
        )
    ]
    return (
        naive.join(classes, on="gid", how="left")
        .with_columns(*fallback, pl.lit(n, dtype=pl.Int64).alias("n"))
        .drop("_first_idx")
    )


def _verdicts_for_order(rows: pl.DataFrame, ns: list[int]) -> pl.DataFrame:
    """Long verdicts (gid, n, method, idx, correct f64) of the three selectors for one ordering.

    One filter + group-by per budget, run as one lazy plan (polars runs the budgets in
    parallel). Rows processed: Σ n over the budgets ≈ 2N per problem. A one-pass version
    with running winners (window functions over (problem, class)) was tried and was ~5×
    slower at 3.8M candidates: polars' `over` on two keys costs more than these group-bys.
    """
    lazy = rows.lazy()
    wide = pl.concat([_select_at(lazy, n) for n in ns], how="vertical").collect()
    parts = [
        wide.select(
            "gid",
            "n",
            pl.lit(method).alias("method"),
            pl.col(f"{method}_idx").alias("idx"),
            pl.col(f"{method}_correct").fill_null(False).cast(pl.Float64).alias("correct"),
        )
        for method in SELECTORS
    ]
    return pl.concat(parts, how="vertical")


def _pass_rows(groups: pl.DataFrame, ns: list[int]) -> pl.DataFrame:
    """pass@n per group for every budget of its cell (k capped at the group's own N)."""
    expanded = (
        groups.select("gid", "n_total", "n_correct", "n_cell")
        .join(pl.DataFrame({"n": ns}, schema={"n": pl.Int64}), how="cross")
        .filter(
            (pl.col("n") <= pl.col("n_cell"))
            & (((pl.col("n") & (pl.col("n") - 1)) == 0) | (pl.col("n") == pl.col("n_cell")))
        )
        .with_columns(pl.min_horizontal("n", "n_total").alias("k"))
    )
    scored = with_pass_at_k(expanded, total="n_total", correct="n_correct", k="k", out="correct")
    return scored.select(
        "gid", "n", pl.lit("pass").alias("method"), pl.lit(None, dtype=pl.Int64).alias("idx"), "correct"
    )


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a stable, well-mixed 64-bit hash of uint64s."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _group_hashes(groups: pl.DataFrame) -> np.ndarray:
    """A stable 64-bit hash per (cell_id, problem_id): blake2b of the two ids, one per group."""
    pairs = zip(groups["cell_id"].to_list(), groups["problem_id"].to_list(), strict=True)
    return np.array(
        [int.from_bytes(hashlib.blake2b(f"{c}\x1f{p}".encode(), digest_size=8).digest(), "little") for c, p in pairs],
        dtype=np.uint64,
    )


def _draw_order(rows: pl.DataFrame, group_hash: np.ndarray, seed: int, draw: int) -> pl.DataFrame:
    """`rows` with `pos` replaced by a seeded random rank within each group, sorted by (gid, pos)."""
    mix = _splitmix64(np.array([(seed & 0xFFFFFFFF) << 32 | (draw & 0xFFFFFFFF)], dtype=np.uint64))[0]
    gh = group_hash[rows["gid"].to_numpy()]
    keys = _splitmix64(_splitmix64(gh ^ mix) ^ rows["idx"].to_numpy().astype(np.uint64))
    return (
        rows.with_columns(pl.Series("_key", keys, dtype=pl.UInt64))
        .sort("gid", "_key")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("gid").alias("pos"))
        .drop("_key")
    )


def _drop_unscored(verdicts: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """Remove naive/weighted rows of cells that carry no score at all."""
    unscored = groups.filter(~pl.col("scored")).select("gid")
    if unscored.height == 0:
        return verdicts
    drop = unscored.with_columns(pl.lit(True).alias("_drop"))
    return (
        verdicts.join(drop, on="gid", how="left")
        .filter(~(pl.col("_drop").fill_null(False) & pl.col("method").is_in(["naive", "weighted"])))
        .drop("_drop")
    )


def _budget_list(groups: pl.DataFrame) -> list[int]:
    ns: set[int] = set()
    for n_cell in groups["n_cell"].unique().to_list():
        ns.update(budgets(int(n_cell)))
    return sorted(ns)


def select_verdicts(candidates: pl.DataFrame) -> pl.DataFrame:
    """Prefix-mode verdicts for every cell, problem, budget and method.

    Columns: cell_id, problem_id, n, method, idx (chosen candidate; null for `pass` and when
    nothing can be chosen), correct (f64). `candidates` needs the columns of
    `read_candidates` named in `frames.CANDIDATE_COLUMNS`.
    """
    return problem_verdicts(candidates, mode="prefix").per_problem


def problem_verdicts(
    candidates: pl.DataFrame,
    *,
    mode: Mode = "prefix",
    n_draws: int = 32,
    seed: int = 0,
    n_cells: Mapping[str, int] | None = None,
) -> Verdicts:
    """Verdicts of every selection method at every budget, subsampled by `mode`.

    `n_draws` and `seed` apply to `bootstrap` only: draws are independent random orderings,
    each giving one subset per budget (subsets of different budgets in one draw are nested,
    as in the reference's prefix scoring). `n_cells` (cell id → budget N) sets each cell's
    budgets; without it a cell's N is the most candidates one of its problems has.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "bootstrap" and n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    require_columns(candidates, CANDIDATE_COLUMNS, "candidates")
    groups, rows = _groups(candidates, n_cells)
    ids = groups.select("gid", "cell_id", "problem_id")
    if groups.height == 0:
        empty = pl.DataFrame(
            schema={"cell_id": pl.String, "problem_id": pl.String, "n": pl.Int64, "method": pl.String,
                    "correct": pl.Float64, "idx": pl.Int64}
        )
        draws = pl.DataFrame(
            schema={"cell_id": pl.String, "n": pl.Int64, "method": pl.String, "draw": pl.Int64,
                    "accuracy": pl.Float64}
        )
        stats = groups.select("cell_id", "problem_id", "n_total", "n_correct", "n_scored", "mean_score")
        return Verdicts(empty, draws, mode, n_draws if mode == "bootstrap" else 1, stats)
    ns = _budget_list(groups)
    passes = _pass_rows(groups, ns)

    if mode == "prefix":
        chosen = _drop_unscored(_verdicts_for_order(rows, ns), groups)
        long = pl.concat([chosen, passes], how="vertical").sort("gid", "n", "method")
        per_problem = long.join(ids, on="gid", how="left", maintain_order="left")
        per_draw = per_problem.group_by("cell_id", "n", "method").agg(
            pl.lit(0, dtype=pl.Int64).alias("draw"), pl.col("correct").mean().alias("accuracy")
        )
        drawn = 1
    else:
        hashes = _group_hashes(groups)
        totals: pl.DataFrame | None = None
        draw_acc = []
        for draw in range(n_draws):
            order = _draw_order(rows, hashes, seed, draw)
            chosen = _drop_unscored(_verdicts_for_order(order, ns), groups).select("gid", "n", "method", "correct")
            if totals is not None:
                chosen_sum = pl.concat([totals, chosen], how="vertical")
                totals = chosen_sum.group_by("gid", "n", "method").agg(pl.col("correct").sum())
            else:
                totals = chosen
            draw_acc.append(
                chosen.join(ids.select("gid", "cell_id"), on="gid", how="left")
                .group_by("cell_id", "n", "method")
                .agg(pl.col("correct").mean().alias("accuracy"))
                .with_columns(pl.lit(draw, dtype=pl.Int64).alias("draw"))
            )
        assert totals is not None
        mean = totals.select(
            "gid", "n", "method", pl.lit(None, dtype=pl.Int64).alias("idx"), (pl.col("correct") / n_draws)
        )
        per_problem = (
            pl.concat([mean, passes], how="vertical")
            .sort("gid", "n", "method")
            .join(ids, on="gid", how="left", maintain_order="left")
        )
        pass_acc = (
            passes.join(ids.select("gid", "cell_id"), on="gid", how="left")
            .group_by("cell_id", "n", "method")
            .agg(pl.col("correct").mean().alias("accuracy"))
            .with_columns(pl.lit(0, dtype=pl.Int64).alias("draw"))
        )
        per_draw = pl.concat([*draw_acc, pass_acc], how="vertical")
        drawn = n_draws
    per_problem = per_problem.select("cell_id", "problem_id", "n", "method", "correct", "idx")
    per_draw = per_draw.select("cell_id", "n", "method", "draw", "accuracy").sort("cell_id", "n", "method", "draw")
    stats = groups.select("cell_id", "problem_id", "n_total", "n_correct", "n_scored", "mean_score")
    return Verdicts(per_problem, per_draw, mode, drawn, stats)


def shard_verdicts(results: Sequence[ProblemResult], budgets: Sequence[int]) -> list[Verdict]:
    """The verdicts a runner stores for graded results of one cell, at `budgets` (the largest is
    the cell's N): the prefix-mode verdicts reports compute from the stored candidates, so a
    stored number and a reported one can never disagree. `pass` is the pass@n estimate."""
    rows = [
        ("shard", r.problem_id, c.index, c.answer_class, c.correct, c.score)
        for r in results
        for c in r.candidates
    ]
    if not rows or not budgets:
        return []
    frame = pl.DataFrame(
        rows,
        schema={"cell_id": pl.String, "problem_id": pl.String, "idx": pl.Int64, "answer_class": pl.Int64,
                "correct": pl.Boolean, "score": pl.Float64},
        orient="row",
    )  # fmt: skip
    wanted = set(budgets)
    per_problem = problem_verdicts(frame, n_cells={"shard": max(budgets)}).per_problem.filter(pl.col("n").is_in(sorted(wanted)))
    answers = {(r.problem_id, c.index): c.answer for r in results for c in r.candidates}
    return [
        Verdict(row["problem_id"], row["method"], row["n"], None if row["idx"] is None else answers.get((row["problem_id"], row["idx"])), float(row["correct"]))
        for row in per_problem.iter_rows(named=True)
    ]
