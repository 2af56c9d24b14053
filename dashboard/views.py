"""Display frames and sentences from the store's and the analysis's frames: pure functions.

Nothing here computes a metric (accuracy, intervals, bins and frontiers come from
`ttscale.analysis`); it counts progress, picks the rows a chart draws, labels, and words
captions. Frames in, frames (or strings) out, so every function is testable without Streamlit.
"""

from __future__ import annotations

import math
from datetime import datetime

import polars as pl

from ttscale.analysis.cells import budget_is_run
from ttscale.reward_model import short_name

# ---- progress -----------------------------------------------------------------------------------


def cell_progress(cells: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """One row per cell: its store row plus n_problems_expected (the cell's `n_problems`; null
    where unrecorded), progress (0..1 or null), elapsed_s (start → finish, or → now while
    running) and label.

    A cell served by a larger cell's generations (`source_cell_id`) counts the source's
    problems, as `ttscale sweep status` does (`sweep_state.sweep_progress`).
    """
    done = cells.select(pl.col("cell_id").alias("source_cell_id"), pl.col("n_problems_done").alias("_source_done"))
    end = pl.when(pl.col("finished_at").is_not_null()).then(pl.col("finished_at")).otherwise(pl.lit(now))
    out = (
        cells.with_columns(pl.when(pl.col("n_problems") > 0).then(pl.col("n_problems")).alias("n_problems_expected"))
        .join(done, on="source_cell_id", how="left")
        .with_columns(
            pl.when(pl.col("source_cell_id").is_not_null() & pl.col("_source_done").is_not_null())
            .then(pl.col("_source_done"))
            .otherwise(pl.col("n_problems_done"))
            .alias("n_problems_done"),
            ((end - pl.col("started_at")).dt.total_microseconds() / 1e6).alias("elapsed_s"),
        )
        .with_columns(
            pl.when(pl.col("n_problems_expected") > 0)
            .then((pl.col("n_problems_done") / pl.col("n_problems_expected")).clip(0.0, 1.0))
            .otherwise(None)
            .alias("progress"),
            cell_label().alias("label"),
        )
        .drop("_source_done")
    )
    return out


def short_verifier(column: str = "verifier") -> pl.Expr:
    """A verifier column by display names (`learned:FOLDER@12345678`, not the absolute path):
    for rows that also name their cell, so two verifiers never read alike."""
    return pl.col(column).map_elements(short_name, return_dtype=pl.String)


def cell_label() -> pl.Expr:
    """`model · strategy + verifier n=N · dataset · seed s · <id>` (verifier, by its display name,
    shown when there is one)."""
    verifier = pl.when(pl.col("verifier").is_not_null()).then(" + " + short_verifier()).otherwise(pl.lit(""))
    return pl.format(
        "{} · {}{} n={} · {} · seed {} · {}",
        pl.col("model"), pl.col("strategy"), verifier, pl.col("n"), pl.col("dataset"), pl.col("seed"), pl.col("cell_id"),
    )  # fmt: skip


def sweep_progress(sweeps: pl.DataFrame, progress: pl.DataFrame, memberships: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """One row per sweep: its store row plus cells_done, problems_done, problems_expected,
    progress, started_at, eta_s (running sweeps: remaining problem-cells at the rate so far),
    and the models, datasets and strategies of its cells (lists, for filtering).

    Problems are counted over the cells that generate (served cells reuse their source's),
    as `ttscale sweep status` counts them."""
    linked = memberships.join(progress, on="cell_id", how="inner")
    own = pl.col("source_cell_id").is_null()
    per_sweep = linked.group_by("sweep_id").agg(
        (pl.col("status") == "done").sum().cast(pl.Int64).alias("cells_done"),
        pl.col("n_problems_done").filter(own).sum().cast(pl.Int64).alias("problems_done"),
        pl.col("n_problems_expected").filter(own).sum().cast(pl.Int64).alias("problems_expected"),
        pl.col("n_problems_expected").filter(own).is_null().any().alias("_unknown_total"),
        pl.col("started_at").min().alias("started_at"),
        pl.col("model").unique().sort().alias("models"),
        pl.col("dataset").unique().sort().alias("datasets"),
        pl.col("strategy").unique().sort().alias("strategies"),
    )
    out = sweeps.join(per_sweep, on="sweep_id", how="left").with_columns(
        pl.col("cells_done").fill_null(0),
        pl.col("problems_done").fill_null(0),
        pl.when(pl.col("_unknown_total")).then(None).otherwise(pl.col("problems_expected")).alias("problems_expected"),
    )
    elapsed = (pl.lit(now) - pl.col("started_at")).dt.total_microseconds() / 1e6
    remaining = pl.col("problems_expected") - pl.col("problems_done")
    running = (pl.col("status") == "running") & (pl.col("problems_done") > 0) & pl.col("problems_expected").is_not_null()
    return out.with_columns(
        pl.when(pl.col("problems_expected") > 0)
        .then((pl.col("problems_done") / pl.col("problems_expected")).clip(0.0, 1.0))
        .otherwise(None)
        .alias("progress"),
        pl.when(running).then(remaining.clip(0) * elapsed / pl.col("problems_done")).otherwise(None).alias("eta_s"),
    ).drop("_unknown_total")


def sweep_table(sweeps: pl.DataFrame) -> pl.DataFrame:
    """`sweep_progress` rows as the sweeps table shows them."""
    return sweeps.select(
        "name",
        "status",
        "progress",
        pl.format("{}/{}", pl.col("cells_done"), pl.col("n_cells")).alias("cells done"),
        pl.format("{}/{}", pl.col("problems_done"), pl.col("problems_expected").cast(pl.String).fill_null("?")).alias("problems done"),
        pl.col("eta_s").map_elements(duration, return_dtype=pl.String).fill_null("–").alias("ETA"),
        pl.col("created_by").alias("launched by"),
        pl.col("created_at").alias("launched"),
        "finished_at",
        "code_version",
        pl.col("models").list.join(", ").alias("models"),
        pl.col("datasets").list.join(", ").alias("datasets"),
        pl.col("strategies").list.join(", ").alias("strategies"),
        "sweep_id",
    )


def cell_table(progress: pl.DataFrame) -> pl.DataFrame:
    """`cell_progress` rows as the cell tables show them."""
    return progress.select(
        "status", "model", "strategy", short_verifier(), "n", "dataset", "seed", "progress",
        pl.format("{}/{}", pl.col("n_problems_done"), pl.col("n_problems_expected").cast(pl.String).fill_null("?")).alias("problems"),
        pl.col("elapsed_s").map_elements(duration, return_dtype=pl.String).fill_null("–").alias("elapsed"),
        "policy_flops", "code_version", "created_at", "cell_id",
    )  # fmt: skip


def cells_of(progress: pl.DataFrame, memberships: pl.DataFrame, sweep_id: str) -> pl.DataFrame:
    return progress.filter(pl.col("cell_id").is_in(memberships.filter(pl.col("sweep_id") == sweep_id)["cell_id"].to_list()))


def unswept_cells(progress: pl.DataFrame, memberships: pl.DataFrame) -> pl.DataFrame:
    """Cells that belong to no sweep (run with `ttscale run`)."""
    return progress.filter(~pl.col("cell_id").is_in(memberships["cell_id"].to_list()))


def filter_sweeps(frame: pl.DataFrame, models: list[str], datasets: list[str], strategies: list[str]) -> pl.DataFrame:
    """Sweeps with at least one cell of each chosen facet (an empty choice keeps all)."""
    for column, chosen in (("models", models), ("datasets", datasets), ("strategies", strategies)):
        if chosen:
            frame = frame.filter(pl.col(column).list.eval(pl.element().is_in(chosen)).list.any())
    return frame


def filter_cells(frame: pl.DataFrame, models: list[str], datasets: list[str], strategies: list[str]) -> pl.DataFrame:
    for column, chosen in (("model", models), ("dataset", datasets), ("strategy", strategies)):
        if chosen:
            frame = frame.filter(pl.col(column).is_in(chosen))
    return frame


def duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 05s`, `12s`; `–` when unknown."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


# ---- frontiers ----------------------------------------------------------------------------------


def accuracy_lines(accuracy: pl.DataFrame, models: pl.DataFrame | None = None) -> pl.DataFrame:
    """The points a frontier chart draws: one per (model, dataset, config, method, n).

    From `Report.accuracy` (per configuration across seeds, with intervals), keeps only budgets
    that stand for a real run (`cells.budget_is_run`), and where several cells give the same
    n (a cell run at n, and the first n of a larger cell) prefers the cell run at n, then the
    largest. With `models` (`Report.models`), adds `flops_per_problem`. Adds `option`
    (`config:method`), as the analysis names options.
    """
    real = accuracy.filter(budget_is_run(pl.col("n"), pl.col("n_cell"), pl.col("prefix_unit")))
    keys = ["model", "dataset", "config", "method", "n"]
    best = (
        real.with_columns((pl.col("n") == pl.col("n_cell")).alias("_exact"))
        .sort([*keys, "_exact", "n_cell"], descending=[False] * len(keys) + [True, True])
        .group_by(keys, maintain_order=True)
        .first()
        .drop("_exact")
        .with_columns((pl.col("config") + ":" + pl.col("method")).alias("option"))
    )
    if models is not None and models.height:
        flops = models.select("model", "dataset", "option", "n", "flops_per_problem")
        best = best.join(flops, on=["model", "dataset", "option", "n"], how="left")
    else:
        best = best.with_columns(pl.lit(None, dtype=pl.Float64).alias("flops_per_problem"))
    return best.sort("model", "dataset", "option", "n")


def pct(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}%"


def sci(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2g}"


def _option_words(option: str) -> str:
    """`beam_search:weighted` → `beam_search (weighted selection)`; `majority:majority` →
    `majority voting`; `pass` is the oracle."""
    config, _, method = option.rpartition(":")
    if not config:
        return option
    if method == "pass":
        return f"{config} (pass@n, oracle)"
    if config == "majority" and method == "majority":
        return "majority voting"
    return f"{config} ({method} selection)"


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None or not high > low:
        return ""
    return f" (95% CI {pct(low)}–{pct(high)})"


def comparison_captions(comparison: pl.DataFrame) -> list[str]:
    """Plain sentences from `analysis.compare_models`: where the small model matches the large
    one, at what budget and FLOPs ratio, and where it overtakes it at matched compute."""
    out = []
    for r in comparison.iter_rows(named=True):
        small, large = r["small_model"], r["large_model"]
        once = "answering once" if r["reference_n"] == 1 else f"with {_option_words(r['reference_option'])} at n={r['reference_n']}"
        reference = f"{large} {once} ({pct(r['reference_accuracy'])})"
        if r["beats_reference_option"]:
            n = r["beats_reference_n"]
            text = (
                f"At {n} generation{'s' if n != 1 else ''}, {_option_words(r['beats_reference_option'])} with {small} "
                f"reaches {pct(r['beats_reference_accuracy'])}, above {reference}"
            )
            if r["flops_ratio"] is not None:
                text += f", at {r['flops_ratio']:.2f}× its FLOPs"
            text += "."
        else:
            text = f"{small} never beats {reference}: its best is {pct(r['small_best_accuracy'])}."
        if r["overtakes_at_flops"] is not None:
            text += (
                f" At matched compute {small} is ahead from {sci(r['overtakes_at_flops'])} FLOPs per problem "
                f"({pct(r['overtakes_accuracy'])} vs {pct(r['large_accuracy_there'])})"
            )
            text += f" up to {sci(r['ahead_until_flops'])}." if r["ahead_until_flops"] is not None else "."
        out.append(f"{r['dataset']}: {text}")
    return out


def frontier_captions(lines: pl.DataFrame, methods: list[str] | None = None) -> list[str]:
    """Per model and dataset: the best option at the largest budget and how far it rose from n=1."""
    out = []
    shown = lines.filter(pl.col("method").is_in(methods)) if methods else lines
    shown = shown.filter(pl.col("method") != "pass")
    for (model, dataset), group in shown.group_by("model", "dataset", maintain_order=True):
        top_n = group["n"].max()
        at_top = group.filter(pl.col("n") == top_n).sort("accuracy", descending=True)
        best = at_top.row(0, named=True)
        text = (
            f"{model} on {dataset}: at {top_n} generation{'s' if top_n != 1 else ''}, {_option_words(best['option'])} "
            f"is best with {pct(best['accuracy'])}{_interval(best['ci_low'], best['ci_high'])}"
        )
        once = group.filter(pl.col("n") == 1).sort("accuracy", descending=True)
        if once.height and top_n != 1:
            first = once.row(0, named=True)
            text += f", against {pct(first['accuracy'])} from one generation with {_option_words(first['option'])}"
        out.append(text + ".")
    return out


def optimal_captions(frontier: pl.DataFrame) -> list[str]:
    """From `compute_optimal` (budget n): the largest gain of per-bin choice over one strategy."""
    out = []
    overall = frontier.filter(pl.col("bin") == "all")
    for (model, dataset), group in overall.group_by("model", "dataset", maintain_order=True):
        best = group.filter(pl.col("gain").is_not_null()).sort("gain", "budget", descending=[True, False])
        if not best.height:
            continue
        r = best.row(0, named=True)
        if r["gain"] > 0:
            out.append(
                f"{model} on {dataset}: choosing the strategy per difficulty bin gains {100 * r['gain']:+.1f} points"
                f"{ci_text(r.get('gain_ci_low'), r.get('gain_ci_high'), signed=True, prefix=' ')} "
                f"over the best single strategy at n={r['budget']} ({pct(r['optimal_accuracy'])} vs {pct(r['single_accuracy'])}, "
                "each chosen on one half of the problems and scored on the other)."
            )
        else:
            out.append(
                f"{model} on {dataset}: no budget where choosing per difficulty bin beats the best single strategy "
                "(two-fold, each choice scored on the other half of the problems)."
            )
    return out


def ci_text(low: float | None, high: float | None, *, signed: bool = False, prefix: str = "") -> str:
    """A 95% interval of a share as `[7.1, 59.1]` (percent) or, `signed`, `[-6.2, +32.8]`
    (points); empty when unknown. `prefix` goes before it when there is one."""
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return ""
    fmt = "+.1f" if signed else ".1f"
    return f"{prefix}[{100 * low:{fmt}}, {100 * high:{fmt}}]"


def ci_column(frame: pl.DataFrame, stem: str, *, signed: bool = False) -> pl.Expr:
    """`ci_text` of `<stem>_ci_low/high` as a string column (`–` where the frame has none)."""
    low, high = f"{stem}_ci_low", f"{stem}_ci_high"
    if low not in frame.columns or high not in frame.columns:
        return pl.lit("–")
    return pl.struct(low, high).map_elements(
        lambda r: ci_text(r[low], r[high], signed=signed) or "–", return_dtype=pl.String
    )


def optimal_table(frontier: pl.DataFrame, budget_label: str = "n") -> pl.DataFrame:
    """`compute_optimal` as the page shows it: per bin and budget, the strategy chosen (on each
    fold) and its accuracy against the best single strategy's, each with its 95% interval
    (Wilson over the problems; the gain's is the paired t-interval), in percent / points."""

    def chosen(prefix: str) -> pl.Expr:
        a, b = pl.col(f"{prefix}_chosen_on_0"), pl.col(f"{prefix}_chosen_on_1")
        return (
            pl.when(a.is_null() & b.is_null())
            .then(pl.lit("(per bin)"))
            .when(a.is_null() | b.is_null() | (a == b))
            .then(pl.coalesce(a, b))
            .otherwise(a + " | " + b)
        )

    return frontier.select(
        "model",
        "dataset",
        pl.col("bin").alias("difficulty bin"),
        pl.col("budget").alias(budget_label),
        pl.col("n_problems").alias("problems"),
        chosen("optimal").alias("best strategy (fold 0 | fold 1)"),
        pl.col("optimal_accuracy").alias("best accuracy"),
        ci_column(frontier, "optimal").alias("best 95% CI (%)"),
        chosen("single").alias("best single strategy"),
        pl.col("single_accuracy").alias("single accuracy"),
        ci_column(frontier, "single").alias("single 95% CI (%)"),
        (100 * pl.col("gain")).alias("gain (points)"),
        ci_column(frontier, "gain", signed=True).alias("gain 95% CI (points)"),
        pl.col("optimal_flops").alias("FLOPs/problem"),
    )


# ---- problem explorer ---------------------------------------------------------------------------


def path_to(nodes: pl.DataFrame, leaf: int | None) -> list[int]:
    """Node ids from the root to `leaf` (empty if unknown)."""
    if leaf is None or nodes.height == 0:
        return []
    parent = dict(zip(nodes["node_id"].to_list(), nodes["parent_id"].to_list(), strict=True))
    path, node = [], leaf
    while node is not None and node in parent and len(path) <= len(parent):
        path.append(node)
        node = parent[node]
    return path[::-1]


def tree_layout(nodes: pl.DataFrame, highlight: list[int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(points, edges) to draw a search tree left to right.

    points: node_id, depth, y (leaves get consecutive rows in depth-first order, a parent sits
    at the mean of its children), score (the node's last step score), on_path, kind, state
    (`on selected path`, `kept`, `pruned`, `other`), text, n_generated_tokens.
    edges: x, y, x2, y2, on_path (one per parent → child).
    """
    ids = nodes["node_id"].to_list()
    parents = nodes["parent_id"].to_list()
    children: dict[int | None, list[int]] = {}
    for node, parent in zip(ids, parents, strict=True):
        children.setdefault(parent if parent in set(ids) else None, []).append(node)
    y: dict[int, float] = {}
    row = 0
    stack: list[tuple[int, bool]] = [(r, False) for r in reversed(children.get(None, []))]
    while stack:  # iterative post-order: trees may be thousands of nodes deep in total
        node, expanded = stack.pop()
        kids = children.get(node, [])
        if not kids:
            y[node] = float(row)
            row += 1
        elif expanded:
            y[node] = sum(y[k] for k in kids) / len(kids)
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in reversed(kids))
    on_path = set(highlight)
    score = pl.col("scores").list.last()
    state = (
        pl.when(pl.col("node_id").is_in(sorted(on_path)))
        .then(pl.lit("on selected path"))
        .when(pl.col("pruned"))
        .then(pl.lit("pruned"))
        .when(pl.col("selected"))
        .then(pl.lit("kept"))
        .otherwise(pl.lit("other"))
    )
    points = nodes.with_columns(
        pl.col("node_id").replace_strict(y, return_dtype=pl.Float64).alias("y"),
        score.alias("score"),
        pl.col("node_id").is_in(sorted(on_path)).alias("on_path"),
        state.alias("state"),
        pl.col("text").str.slice(0, 300).alias("text_preview"),
    ).select("node_id", "parent_id", "depth", "y", "score", "on_path", "state", "kind", "text_preview", "n_generated_tokens", "finish_reason")
    depth = dict(zip(ids, nodes["depth"].to_list(), strict=True))
    edges = [
        {"x": depth[p], "y": y[p], "x2": depth[c], "y2": y[c], "on_path": p in on_path and c in on_path}
        for c, p in zip(ids, parents, strict=True)
        if p is not None and p in y and c in y
    ]
    edge_schema = {"x": pl.Int64, "y": pl.Float64, "x2": pl.Int64, "y2": pl.Float64, "on_path": pl.Boolean}
    return points, pl.DataFrame(edges, schema=edge_schema, orient="row") if edges else pl.DataFrame(schema=edge_schema)


def candidate_table(candidates: pl.DataFrame, verdicts: pl.DataFrame, n: int) -> pl.DataFrame:
    """Every candidate with its extracted answer, correctness, score, and which selection
    methods pick it from the first n candidates."""
    picked = (
        verdicts.filter((pl.col("n") == n) & pl.col("idx").is_not_null())
        .group_by("idx")
        .agg(pl.col("method").sort().str.join(", ").alias("chosen by"))
        if verdicts.height
        else pl.DataFrame(schema={"idx": pl.Int64, "chosen by": pl.String})
    )
    return (
        candidates.join(picked, on="idx", how="left")
        .with_columns(pl.col("chosen by").fill_null(""), (pl.col("idx") < n).alias("in first n"))
        .select("idx", "answer", "correct", "score", "chosen by", "in first n", "answer_method", "n_generated_tokens", "finish_reason", "leaf")
        .sort("idx")
    )


def chosen_leaf(verdicts: pl.DataFrame, candidates: pl.DataFrame, n: int, method: str) -> int | None:
    """The tree leaf of the candidate `method` picks from the first n (None if it picks none)."""
    if verdicts.height == 0:
        return None
    picked = verdicts.filter((pl.col("n") == n) & (pl.col("method") == method) & pl.col("idx").is_not_null())
    if picked.height == 0:
        return None
    leaf = candidates.filter(pl.col("idx") == picked["idx"][0])["leaf"]
    return int(leaf[0]) if leaf.len() else None


def path_steps(nodes: pl.DataFrame, path: list[int]) -> pl.DataFrame:
    """The nodes of a path, root first, with their last step score."""
    return nodes.filter(pl.col("node_id").is_in(path)).sort("depth").select(
        "node_id", "depth", pl.col("scores").list.last().alias("step score"), "n_generated_tokens", "text"
    )


def verdict_table(verdicts: pl.DataFrame, candidates: pl.DataFrame, n: int) -> pl.DataFrame:
    """method, chosen candidate, its answer and correctness at budget n."""
    if verdicts.height == 0:
        return pl.DataFrame(schema={"method": pl.String, "candidate": pl.Int64, "answer": pl.String, "correct": pl.Float64})
    answers = candidates.select(pl.col("idx"), "answer")
    return (
        verdicts.filter(pl.col("n") == n)
        .join(answers, on="idx", how="left")
        .select("method", pl.col("idx").alias("candidate"), "answer", "correct")
        .sort("method")
    )


# ---- audit --------------------------------------------------------------------------------------


def audit_counts(cells: pl.DataFrame, runs: pl.DataFrame) -> dict:
    """Totals of a sweep's (or a cell's) stored work, from its problem runs."""

    def total(column: str) -> int | float:
        return runs[column].sum() if runs.height else 0

    return {
        "cells": cells.height,
        "problems": runs.height,
        "candidates": int(total("n_candidates")),
        "nodes": int(total("n_nodes")),
        "generated_tokens": int(total("n_generated_tokens")),
        "policy_flops": float(total("policy_flops")),
        "verifier_flops": float(total("verifier_flops")),
        "elapsed_s": float(total("elapsed_s")),
    }


def cell_timings(cells: pl.DataFrame, runs: pl.DataFrame) -> pl.DataFrame:
    """Per cell: status, start, finish, wall time, summed shard time, problems, candidates."""
    per_cell = runs.group_by("cell_id").agg(
        pl.len().cast(pl.Int64).alias("problems"),
        pl.col("n_candidates").sum().alias("candidates"),
        pl.col("elapsed_s").sum().alias("shard_s"),
    )
    wall = (pl.col("finished_at") - pl.col("started_at")).dt.total_microseconds() / 1e6
    return (
        cells.join(per_cell, on="cell_id", how="left")
        .with_columns(wall.alias("wall_s"))
        .select(
            "cell_id", "status", "model", "strategy", "n", "dataset", "seed",
            pl.col("started_at").alias("started"), pl.col("finished_at").alias("finished"),
            pl.col("wall_s").map_elements(duration, return_dtype=pl.String).fill_null("–").alias("wall time"),
            pl.col("shard_s").map_elements(duration, return_dtype=pl.String).fill_null("–").alias("shard time"),
            pl.col("problems").fill_null(0), pl.col("candidates").fill_null(0),
            pl.col("policy_flops").alias("policy FLOPs"), "code_version",
        )  # fmt: skip
        .sort("model", "strategy", "n", "seed")
    )
