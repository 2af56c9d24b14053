"""Cached loaders: the only place the dashboard reaches the store.

`st.cache_resource` holds one Engine per URL (`store.open_engine`, as every edge opens the
store); `st.cache_data(ttl=...)` holds frames keyed by plain arguments (the URL first, so two
stores never share an entry). Every read goes through `ttscale.store.read_*` or
`ttscale.results`, and every number through `ttscale.analysis`; nothing here writes. The URL is
`Settings.from_env().dashboard_database_url`: `TTSCALE_DASHBOARD_DATABASE_URL` (the read-only
role on a team install), falling back to the store URL.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from ttscale import analysis, results, store
from ttscale.analysis import agreement as analysis_agreement
from ttscale.analysis import findings as analysis_findings
from ttscale.analysis.bin_accuracy import bin_accuracy
from ttscale.analysis.cells import describe_cells
from ttscale.analysis.verifier_quality import verifier_quality as analysis_verifier_quality
from ttscale.learning.model_card import ModelCard, allowed_roots, read_model_card
from ttscale.settings import Settings
from ttscale.store import export as store_export

LIST_TTL_S = 15
"""Sweep and cell lists: short, so a running sweep's progress moves on the next rerun."""
RESULT_TTL_S = 3600
"""Results (analyses, a cell's problems, a problem's candidates and tree) are keyed by a stamp
of what their cells hold (`stamp`), taken from the cell list: they are recomputed as soon as
a cell stores more, and otherwise kept (a stored problem never changes)."""


def database_url() -> str:
    return Settings.from_env().dashboard_database_url


def settings() -> Settings:
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def engine(url: str):
    """One Engine (and its pool) per store URL for the whole server."""
    return store.open_engine(url, create_embedded=False)


def clear() -> None:
    """Forget cached frames (the sidebar's refresh button)."""
    st.cache_data.clear()


def stamp(url: str, cell_ids: tuple[str, ...]) -> str:
    """What the cells hold, in brief (problems done and status per cell, from the cell list):
    part of a result's cache key (an argument Streamlit hashes), so a result is recomputed
    exactly when its cells change."""
    listed = cells(url)
    chosen = listed.filter(pl.col("cell_id").is_in(list(cell_ids)))
    ids = set(cell_ids) | set(chosen["source_cell_id"].drop_nulls().to_list())  # served cells: their sources count
    frame = listed.filter(pl.col("cell_id").is_in(sorted(ids))).sort("cell_id")
    return ";".join(f"{i}:{n}:{s}" for i, n, s in frame.select("cell_id", "n_problems_done", "status").iter_rows())


# ---- lists ------------------------------------------------------------------------------------


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def sweeps(url: str) -> pl.DataFrame:
    with store.connect(engine(url)) as conn:
        return store.read_sweeps(conn)


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def cells(url: str, sweep_id: str | None = None) -> pl.DataFrame:
    with store.connect(engine(url)) as conn:
        return store.read_cells(conn, sweep_id)


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def memberships(url: str) -> pl.DataFrame:
    """sweep_id, cell_id for every sweep (one `read_cells` per sweep)."""
    with store.connect(engine(url)) as conn:
        frames = [
            store.read_cells(conn, sweep_id).select(pl.lit(sweep_id).alias("sweep_id"), "cell_id")
            for sweep_id in store.read_sweeps(conn)["sweep_id"].to_list()
        ]
    schema = {"sweep_id": pl.String, "cell_id": pl.String}
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)


# ---- analysis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """What the frontier and compute-optimal pages draw, from one pass over the candidates."""

    report: analysis.Report
    bin_accuracy: pl.DataFrame
    n_candidates: int


def analyse(url: str, cell_ids: tuple[str, ...], bins: str = "oracle", mode: str = "prefix", flops: str = "charged") -> Analysis | None:
    """`analysis.build_report` over `cell_ids` and the cells they reuse generations from
    (`source_cell_id`), as `ttscale report` reads them; None when there are no candidates yet."""
    return _analyse(url, tuple(sorted(cell_ids)), bins, mode, flops, stamp(url, tuple(cell_ids)))


@st.cache_data(ttl=RESULT_TTL_S, show_spinner="Analysing candidates…")
def _analyse(url: str, cell_ids: tuple[str, ...], bins: str, mode: str, flops: str, version: str) -> Analysis | None:
    with store.connect(engine(url)) as conn:
        stored = results.load(conn, cell_ids)
    if stored.candidates.height == 0:
        return None
    report = results.report(stored, mode=mode, bins=bins, flops=flops)
    return Analysis(report, bin_accuracy(report.points, report.problem_bins), stored.candidates.height)


@dataclass(frozen=True)
class Findings:
    """What the findings page shows, from the same analysis the other pages draw."""

    headline: str
    """`analysis.findings.headline`: which strategy to use at which budget and difficulty."""
    findings: tuple[analysis_findings.Finding, ...]
    """`analysis.findings.findings`, in reading order."""
    cells: pl.DataFrame
    """`analysis.describe_cells` of the cells the report was built from (their configuration
    labels are the options' names): to find the cell behind a finding."""


def findings(url: str, cell_ids: tuple[str, ...], bins: str = "oracle", mode: str = "prefix", flops: str = "charged") -> Findings | None:
    """The headline and findings of `analyse(url, cell_ids, ...)`; None when there are no
    candidates yet."""
    ids = tuple(sorted(cell_ids))
    return _findings(url, ids, bins, mode, flops, stamp(url, ids))


@st.cache_data(ttl=RESULT_TTL_S, show_spinner="Reading the findings…")
def _findings(url: str, cell_ids: tuple[str, ...], bins: str, mode: str, flops: str, version: str) -> Findings | None:
    result = _analyse(url, cell_ids, bins, mode, flops, version)
    if result is None:
        return None
    listed = cells(url)
    chosen = listed.filter(pl.col("cell_id").is_in(list(cell_ids)))
    ids = set(cell_ids) | set(chosen["source_cell_id"].drop_nulls().to_list())
    generating = listed.filter(pl.col("cell_id").is_in(sorted(ids)) & pl.col("source_cell_id").is_null())  # as results.report
    report = result.report
    return Findings(analysis_findings.headline(report), tuple(analysis_findings.findings(report)), describe_cells(generating))


def verifier_quality(url: str, cell_ids: tuple[str, ...]) -> pl.DataFrame:
    """`analysis.verifier_quality` of the cells (and the cells they reuse generations from):
    one row per generating cell with a verifier, without the rest of the analysis."""
    ids = tuple(sorted(cell_ids))
    return _verifier_quality(url, ids, stamp(url, ids))


@st.cache_data(ttl=RESULT_TTL_S, show_spinner=False)
def _verifier_quality(url: str, cell_ids: tuple[str, ...], version: str) -> pl.DataFrame:
    with store.connect(engine(url)) as conn:
        stored = results.load(conn, cell_ids)
    return analysis_verifier_quality(stored.generating, stored.candidates)


# ---- one cell, one problem ----------------------------------------------------------------------


def cell_problems(url: str, cell_id: str) -> pl.DataFrame:
    """The problems done in one cell with its per-problem totals and candidates' correctness:
    problem_id, level, n_candidates, n_correct, elapsed_s, n_generated_tokens, policy_flops."""
    return _cell_problems(url, cell_id, stamp(url, (cell_id,)))


@st.cache_data(ttl=RESULT_TTL_S, show_spinner=False)
def _cell_problems(url: str, cell_id: str, version: str) -> pl.DataFrame:
    with store.connect(engine(url)) as conn:
        runs = store.read_problem_runs(conn, [cell_id])
        problems = store.read_problems_of_cells(conn, [cell_id])
        candidates = store.read_candidates(conn, [cell_id])
    correct = candidates.group_by("problem_id").agg(pl.col("correct").fill_null(False).sum().cast(pl.Int64).alias("n_correct"))
    return (
        runs.join(problems.select("dataset", "problem_id", "level"), on=["dataset", "problem_id"], how="left")
        .join(correct, on="problem_id", how="left")
        .select(
            "problem_id", "level", "n_candidates", pl.col("n_correct").fill_null(0), "n_nodes",
            "elapsed_s", "n_generated_tokens", "policy_flops", "verifier_flops",
        )  # fmt: skip
        .sort("problem_id")
    )


@dataclass(frozen=True)
class ProblemView:
    problem: dict
    """dataset, problem_id, text, answer (gold), level, subject."""
    candidates: pl.DataFrame
    """idx, answer, answer_method, answer_class, correct, score, step_scores, n_generated_tokens, finish_reason, leaf, text."""
    nodes: pl.DataFrame
    """`store.read_nodes` for the problem."""
    verdicts: pl.DataFrame
    """`analysis.select_verdicts` of the problem's candidates: n, method, idx, correct."""


@st.cache_data(ttl=RESULT_TTL_S, show_spinner=False)
def problem_view(url: str, cell_id: str, problem_id: str, dataset: str) -> ProblemView:
    with store.connect(engine(url)) as conn:
        result = store.read_problem_result(conn, cell_id, problem_id)
        nodes = store.read_nodes(conn, cell_id, problem_id)
        problems = store.read_problems(conn, dataset=dataset, problem_ids=[problem_id])
    candidates = pl.DataFrame(
        [
            {
                "cell_id": cell_id,
                "problem_id": problem_id,
                "idx": c.index,
                "answer": c.answer,
                "answer_method": c.answer_method,
                "answer_class": c.answer_class,
                "correct": c.correct,
                "score": c.score,
                "step_scores": list(c.step_scores),
                "n_generated_tokens": c.n_generated_tokens,
                "finish_reason": c.finish_reason,
                "leaf": c.leaf,
                "text": c.text,
            }
            for c in result.candidates
        ],
        schema={
            "cell_id": pl.String, "problem_id": pl.String, "idx": pl.Int64, "answer": pl.String,
            "answer_method": pl.String, "answer_class": pl.Int64, "correct": pl.Boolean, "score": pl.Float64,
            "step_scores": pl.List(pl.Float64), "n_generated_tokens": pl.Int64, "finish_reason": pl.String,
            "leaf": pl.Int64, "text": pl.String,
        },  # fmt: skip
    )
    verdicts = analysis.select_verdicts(candidates) if candidates.height else pl.DataFrame()
    problem = problems.row(0, named=True) if problems.height else {"dataset": dataset, "problem_id": problem_id}
    return ProblemView(problem, candidates, nodes, verdicts)


# ---- audit ------------------------------------------------------------------------------------


def learned_model(verifier: str) -> ModelCard:
    """`learning.model_card.read_model_card` of a stored `learned:PATH@FINGERPRINT`, under this
    server's model cache and TTSCALE_HOME; a refusal line when it cannot be read."""
    return _learned_model(verifier, tuple(str(root) for root in allowed_roots(settings())))


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def _learned_model(verifier: str, roots: tuple[str, ...]) -> ModelCard:
    # Short-lived: a folder retrained or edited since shows as a mismatch on the next rerun.
    return read_model_card(verifier, tuple(Path(root) for root in roots))


def agreement(url: str, cell_ids: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Published verdicts of imported cells against ttscale's: (per method and budget, the
    problems that differ); both empty when none of the cells came with published predictions."""
    return _agreement(url, tuple(sorted(cell_ids)), stamp(url, tuple(cell_ids)))


@st.cache_data(ttl=RESULT_TTL_S, show_spinner=False)
def _agreement(url: str, cell_ids: tuple[str, ...], version: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    with store.connect(engine(url)) as conn:
        verdicts = store.read_verdicts(conn, list(cell_ids))
    return analysis_agreement.agreement(verdicts), analysis_agreement.disagreements(verdicts)


def cell_runs(url: str, cell_ids: tuple[str, ...]) -> pl.DataFrame:
    """`read_problem_runs` of the cells (counts and timings; no candidate rows)."""
    return _cell_runs(url, tuple(sorted(cell_ids)), stamp(url, tuple(cell_ids)))


@st.cache_data(ttl=RESULT_TTL_S, show_spinner=False)
def _cell_runs(url: str, cell_ids: tuple[str, ...], version: str) -> pl.DataFrame:
    with store.connect(engine(url)) as conn:
        return store.read_problem_runs(conn, list(cell_ids))


def export_sweep_zip(url: str, sweep_id: str, fmt: str) -> bytes:
    """`store.export_sweep` into a temporary folder, zipped. Not cached: it can be large and
    is built only when asked for."""
    with tempfile.TemporaryDirectory(prefix="ttscale-export-") as tmp, store.connect(engine(url)) as conn:
        paths = store.export_sweep(conn, sweep_id, tmp, fmt)
        return _zip(paths)


def export_cell_zip(url: str, cell_id: str, fmt: str) -> bytes:
    """One cell's tables (cells, problem_runs, candidates with text, nodes, verdicts), zipped."""
    with store.connect(engine(url)) as conn:
        tables = {
            "cells": store.read_cells(conn, cell_ids=[cell_id]),
            "problem_runs": store.read_problem_runs(conn, [cell_id]),
            "candidates": store.read_candidates(conn, [cell_id], with_text=True),
            "nodes": store.read_nodes_of_cells(conn, [cell_id]),
            "verdicts": store.read_verdicts(conn, [cell_id]),
        }
    with tempfile.TemporaryDirectory(prefix="ttscale-export-") as tmp:
        paths = []
        for name, frame in tables.items():
            path = Path(tmp) / f"{name}.{fmt}"
            if fmt == "parquet":
                frame.write_parquet(path)
            else:
                store_export.csv_ready(frame).write_csv(path)
            paths.append(path)
        return _zip(paths)


def _zip(paths: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in paths:
            zf.write(path, arcname=path.name)
    return buffer.getvalue()
