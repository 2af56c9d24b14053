"""Every dashboard page under Streamlit's AppTest, against stores seeded by real runs
(`tests/dashboard_store.py`): what each page shows is compared with what the store holds."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from tests import dashboard_store
from ttscale import analysis, store
from ttscale.analysis import findings as analysis_findings
from ttscale.store import read as store_read

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory):
    return dashboard_store.sweep_store(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="session")
def models_store(tmp_path_factory):
    return dashboard_store.models_store(tmp_path_factory.mktemp("dashboard-models"))


@pytest.fixture(scope="session")
def learned_store(tmp_path_factory):
    return dashboard_store.learned_store(tmp_path_factory.mktemp("dashboard-learned"))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    return dashboard_store.empty_store(tmp_path_factory.mktemp("dashboard-empty"))


@pytest.fixture(scope="session")
def stored(sweep_store):
    """What the sweep store holds, read with the store's own readers."""
    engine = store.make_engine(sweep_store.url)
    with engine.connect() as conn:
        sweeps = store.read_sweeps(conn)
        sweep = sweeps.row(0, named=True)
        cells = store.read_cells(conn)
        sweep_cells = store.read_cells(conn, sweep["sweep_id"])
        ids = cells["cell_id"].to_list()
        out = {
            "sweep": sweep,
            "cells": cells,
            "sweep_cells": sweep_cells,
            "candidates": store.read_candidates(conn, ids, with_text=True),
            "verdicts": store.read_verdicts(conn, ids),
            "runs": store.read_problem_runs(conn, ids),
            "problems": store.read_problems(conn),
        }
    engine.dispose()
    return out


def run_page(monkeypatch, seeded, page: str, query: dict[str, str] | None = None) -> AppTest:
    monkeypatch.setenv("TTSCALE_DASHBOARD_DATABASE_URL", seeded.url)
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(el.value) for el in at.get(kind)]


def chart_frames(at: AppTest, i: int) -> list[pl.DataFrame]:
    """The datasets a vega-lite chart was sent with (Streamlit ships them as Arrow)."""
    chart = at.get("vega_lite_chart")[i]
    return [pl.from_arrow(pa.ipc.open_stream(d.data.data).read_all()) for d in chart.proto.datasets]


TABLE_COLUMNS = {
    "sweeps_table": ("launched by", 0),
    "sweep_cells_table": ("elapsed", 0),
    "loose_cells_table": ("elapsed", 1),
    "optimal_table": ("best accuracy", 0),
    "bins_table": ("difficulty_min", 0),
    "candidates_table": ("chosen by", 0),
    "path_table": ("step score", 0),
    "audit_cells": ("shard time", 0),
    "audit_facts": ("field", 0),
    "findings_verifiers": ("AUC within problems", 0),
    "audit_verifiers": ("AUC within problems", 0),
}
"""A page's table by a column only it has (and its rank among tables that have it):
non-interactive `st.dataframe`s carry no element id."""


def frame_of(at: AppTest, key: str, rank: int | None = None) -> pl.DataFrame:
    column, default = TABLE_COLUMNS[key]
    rank = default if rank is None else rank
    found = [df.value for df in at.dataframe if column in df.value.columns]
    if len(found) <= rank:
        raise AssertionError(f"no table {key!r} on the page")
    return pl.from_pandas(found[rank])


def widget(at: AppTest, kind: str, key: str):
    return next(w for w in getattr(at, kind) if w.key == key)


def dashboard_module(name: str):
    """A module of `dashboard/` (the pages import them by bare name)."""
    import importlib
    import sys

    sys.path.insert(0, str(APP.parent))
    return importlib.import_module(name)


def expected_report(seeded, cell_ids: list[str]) -> analysis.Report:
    """The report the dashboard builds for these cells, built here through `ttscale.results`."""
    from ttscale import results

    engine = store.make_engine(seeded.url)
    with engine.connect() as conn:
        report = results.report(results.load(conn, cell_ids), mode="prefix", bins="oracle", flops="charged")
    engine.dispose()
    return report


def finding_blocks(at: AppTest) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """(sentence, [(page, query), ...]) for every container that holds one plain-text sentence
    and links, in page order: the headline and each finding."""
    from urllib.parse import parse_qsl

    out = []
    for node in at.main:
        children = list(getattr(node, "children", {}).values())
        sentences = [c.value for c in children if c.type == "text"]
        links = [
            (el.proto.page, dict(parse_qsl(el.proto.query_string)))
            for child in children if getattr(child, "children", None) is not None
            for el in child if el.type == "page_link"
        ]  # fmt: skip
        if len(sentences) == 1 and links:
            out.append((sentences[0], links))
    return out


def page_links(at: AppTest) -> list[tuple[str, str, dict[str, str]]]:
    from urllib.parse import parse_qsl

    return [(el.proto.page, el.proto.label, dict(parse_qsl(el.proto.query_string))) for el in at.get("page_link")]


# ---- findings -----------------------------------------------------------------------------------


def test_the_dashboard_opens_on_the_findings(monkeypatch, sweep_store):
    monkeypatch.setenv("TTSCALE_DASHBOARD_DATABASE_URL", sweep_store.url)
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Findings"
    assert any(page == "sweeps" for page, _, _ in page_links(at))  # the sweep list stays one click away


def test_findings_page_leads_with_the_headline_and_links_every_finding(monkeypatch, sweep_store, stored):
    sweep_id = stored["sweep"]["sweep_id"]
    at = run_page(monkeypatch, sweep_store, "findings", {"sweep": sweep_id})
    report = expected_report(sweep_store, stored["sweep_cells"]["cell_id"].to_list())
    headline = analysis_findings.headline(report)
    found = analysis_findings.findings(report)
    assert headline and found

    blocks = finding_blocks(at)
    sentences = [sentence for sentence, _ in blocks]
    assert sentences[0] == headline  # the answer comes first
    assert {page for page, _ in blocks[0][1]} == {"frontiers", "compute_optimal"}
    kinds = {f.kind for f in found}
    assert {"best", "compute_optimal", "verifier", "verifier_quality"} <= kinds
    for finding in found:
        sentence = finding.text  # one model and dataset, named by the headline: not repeated
        assert sentence in sentences, sentence
        links = dict(blocks[sentences.index(sentence)][1])
        assert links[finding.page]["sweep"] == sweep_id, finding.kind  # the page with the numbers behind it
    # every section the analysis found something for has its heading, in reading order
    headings = [h.value for h in at.subheader]
    assert headings.index("Best strategy per budget") < headings.index("Verifier") < headings.index("Sweep")

    # the verifier-vs-majority finding links to the candidates behind it: the generating cell of
    # its strategy, at its budget, highlighting its selection method
    verifier = next(f for f in found if f.kind == "verifier")
    links = dict(blocks[sentences.index(verifier.text)][1])
    explorer = links["problems"]
    config, _, method = verifier.option.rpartition(":")
    cell = stored["sweep_cells"].filter(
        (pl.col("strategy") == config) & (pl.col("n") >= verifier.n) & pl.col("source_cell_id").is_null()
    ).sort("n")["cell_id"][0]
    assert explorer == {"sweep": sweep_id, "cell": cell, "n": str(verifier.n), "method": method}
    followed = run_page(monkeypatch, sweep_store, "problems", explorer)
    assert widget(followed, "selectbox", "explorer_cell").value == cell
    assert widget(followed, "select_slider", "explorer_n").value == verifier.n
    assert widget(followed, "selectbox", "explorer_method").value == method


def test_findings_page_shows_verifier_quality_and_flags_a_flat_verifier(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "findings", {"sweep": stored["sweep"]["sweep_id"]})
    report = expected_report(sweep_store, stored["sweep_cells"]["cell_id"].to_list())
    table = frame_of(at, "findings_verifiers")
    want = report.verifiers.sort("cell_id")
    got = table.sort("cell_id")
    assert got["cell_id"].to_list() == want["cell_id"].to_list()
    assert got["AUC"].to_list() == pytest.approx(want["auc"].to_list())
    assert got["AUC within problems"].to_list() == pytest.approx(want["auc_within"].to_list())
    assert got["tied pairs"].to_list() == pytest.approx(want["tied_pairs"].to_list())
    flat = want.filter((pl.col("auc") - 0.5).abs() < 0.05)["cell_id"].to_list()
    assert flat, "the seeded scripted verifier is flat on some cell"
    assert sorted(got.filter(pl.col("flag").str.starts_with("flat"))["cell_id"].to_list()) == sorted(flat)
    warnings = texts(at, "warning")
    assert any(w.startswith(f"{len(flat)} of {want.height} cells with a verifier have a flat verifier") for w in warnings)
    assert any(c.startswith("AUC: the chance that a random correct candidate") for c in texts(at, "caption"))

    # the audit page shows the same table, from its own (lighter) read
    audit = run_page(monkeypatch, sweep_store, "audit", {"sweep": stored["sweep"]["sweep_id"]})
    audited = frame_of(audit, "audit_verifiers").sort("cell_id")
    assert audited["cell_id"].to_list() == want["cell_id"].to_list()
    assert audited["flag"].to_list() == got["flag"].to_list()


def test_findings_page_shows_the_small_model_beating_the_large_one(monkeypatch, models_store):
    at = run_page(monkeypatch, models_store, "findings")
    engine = store.make_engine(models_store.url)
    with engine.connect() as conn:
        cells = store.read_cells(conn)
    engine.dispose()
    report = expected_report(models_store, cells["cell_id"].to_list())
    fv = dashboard_module("finding_views")
    [finding] = [f for f in analysis_findings.findings(report) if f.kind == "small_vs_large"]
    blocks = dict(finding_blocks(at))
    links = dict(blocks[fv.finding_sentence(finding)])
    small = cells.filter((pl.col("model") == "scripted-1b"))["cell_id"][0]
    assert links["problems"]["cell"] == small and links["problems"]["n"] == str(finding.n)
    assert links["frontiers"]["sweep"] == at.query_params["sweep"]
    assert "This comparison needs at least two models" not in " ".join(texts(at, "caption"))


def test_findings_show_names_from_the_store_as_plain_text(monkeypatch, sweep_store, stored):
    """Sentences go through `st.text` (never Markdown), link labels are our own words."""
    at = run_page(monkeypatch, sweep_store, "findings", {"sweep": stored["sweep"]["sweep_id"]})
    dataset = sweep_store.dataset
    assert any(dataset in t for t in texts(at, "text"))
    assert not any(dataset in t for t in texts(at, "markdown") + texts(at, "caption") + texts(at, "subheader"))
    assert not any(dataset in label for _, label, _ in page_links(at))


# ---- sweeps -------------------------------------------------------------------------------------


def test_sweeps_page_shows_status_progress_and_the_cells_outside_sweeps(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "sweeps")
    sweep = stored["sweep"]
    table = frame_of(at, "sweeps_table")
    row = table.filter(pl.col("sweep_id") == sweep["sweep_id"]).row(0, named=True)
    assert row["name"] == "dashboard-test"
    assert row["status"] == sweep["status"] == "done"
    cells = stored["sweep_cells"]
    assert row["cells done"] == f"{cells.height}/{cells.height}"
    # problems counted over the cells that generate (served cells reuse their source's)
    own = cells.filter(pl.col("source_cell_id").is_null())
    assert row["problems done"] == f"{own['n_problems_done'].sum()}/{8 * own.height}"
    assert row["launched by"] == sweep["created_by"] and row["code_version"] == sweep["code_version"]
    assert set(row["strategies"].split(", ")) == {"best_of_n", "beam_search"}

    listed = frame_of(at, "sweep_cells_table")
    assert sorted(listed["cell_id"].to_list()) == sorted(cells["cell_id"].to_list())
    loose = frame_of(at, "loose_cells_table")
    outside = stored["cells"].filter(~pl.col("cell_id").is_in(cells["cell_id"].to_list()))
    assert loose["cell_id"].to_list() == outside["cell_id"].to_list() and outside.height == 1
    assert loose.row(0, named=True)["strategy"] == "majority"
    assert loose.row(0, named=True)["problems"] == "6/6"


def test_sweeps_filter_by_strategy_hides_sweeps_without_it(monkeypatch, sweep_store):
    at = run_page(monkeypatch, sweep_store, "sweeps")
    widget(at, "multiselect", "f_strategy").select("majority").run()
    assert not at.exception
    assert "No sweep matches these filters." in texts(at, "info")
    assert frame_of(at, "loose_cells_table", rank=0).height == 1  # no sweep shown: only the cell outside sweeps
    widget(at, "multiselect", "f_strategy").unselect("majority").select("beam_search").run()
    assert frame_of(at, "sweeps_table")["name"].to_list() == ["dashboard-test"]
    assert "None. `ttscale run ...` stores a single cell here." in texts(at, "caption")


@pytest.mark.parametrize("page", ["findings", "sweeps", "frontiers", "compute_optimal", "problems", "audit"])
def test_empty_store_explains_what_to_run(monkeypatch, empty_store, page):
    at = run_page(monkeypatch, empty_store, page)
    info = " ".join(texts(at, "info"))
    assert "ttscale sweep run examples/demo.yaml" in info
    assert not at.get("vega_lite_chart") and not at.dataframe


# ---- frontiers ----------------------------------------------------------------------------------


def test_frontier_chart_draws_the_stored_accuracy(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "frontiers", {"sweep": stored["sweep"]["sweep_id"]})
    charts = at.get("vega_lite_chart")
    assert len(charts) == 4  # vs n, vs FLOPs, by difficulty, compute-optimal (one model: no comparison)
    lines = chart_frames(at, 0)[0]
    # A beam search is only a beam search at its own N: the stored verdicts at n = N are the truth.
    cells = stored["sweep_cells"]
    for strategy in ("beam_search", "best_of_n"):
        for method in ("weighted", "naive", "majority"):
            for cell in cells.filter((pl.col("strategy") == strategy) & pl.col("source_cell_id").is_null()).iter_rows(named=True):
                v = stored["verdicts"].filter(
                    (pl.col("cell_id") == cell["cell_id"]) & (pl.col("method") == method) & (pl.col("n") == cell["n"])
                )
                drawn = lines.filter(
                    (pl.col("config") == strategy) & (pl.col("method") == method) & (pl.col("n") == cell["n"])
                )
                assert drawn.height == 1, (strategy, method, cell["n"])
                assert drawn["accuracy"][0] == pytest.approx(v["correct"].cast(pl.Float64).mean())
    # beam search appears only at budgets it ran (2 and 4), Best-of-N at every prefix (1, 2, 4)
    assert sorted(set(lines.filter(pl.col("config") == "beam_search")["n"].to_list())) == [2, 4]
    assert sorted(set(lines.filter(pl.col("config") == "best_of_n")["n"].to_list())) == [1, 2, 4]
    assert set(lines["method"].to_list()) == {"naive", "weighted", "majority"}

    flops = chart_frames(at, 1)[0]
    runs = stored["runs"]
    bon = cells.filter((pl.col("strategy") == "best_of_n") & (pl.col("n") == 4))["cell_id"][0]
    per_problem = runs.filter(pl.col("cell_id") == bon).select((pl.col("policy_flops") + pl.col("verifier_flops")).mean()).item()
    at4 = flops.filter((pl.col("config") == "best_of_n") & (pl.col("n") == 4))
    assert at4["flops_per_problem"].to_list() == pytest.approx([per_problem] * at4.height)

    info = " ".join(texts(at, "info"))
    assert "needs at least two models" in info
    captions = " ".join(texts(at, "text"))  # sentences with store names are plain text, never Markdown
    assert f"scripted on {sweep_store.dataset}: at 4 generations" in captions


def test_frontier_methods_widget_filters_lines(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "frontiers", {"sweep": stored["sweep"]["sweep_id"]})
    widget(at, "multiselect", "frontier_methods").unselect("naive").unselect("majority").run()
    assert not at.exception
    assert set(chart_frames(at, 0)[0]["method"].to_list()) == {"weighted"}


def test_every_point_has_an_interval_in_both_modes(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "frontiers", {"sweep": stored["sweep"]["sweep_id"]})
    prefix = chart_frames(at, 0)[0]
    assert prefix["ci_low"].null_count() == 0  # one seed, first-n subsets: Wilson over the problems
    widget(at, "selectbox", "frontier_mode").select("bootstrap").run()
    assert not at.exception
    lines = chart_frames(at, 0)[0]
    assert lines.height == prefix.height and lines["ci_low"].null_count() == 0
    assert (lines["ci_low"] <= lines["ci_high"]).all()
    assert (lines["ci_high"] - lines["ci_low"]).max() > 0  # subsets below N vary between draws


def test_difficulty_facet_uses_the_levels_when_asked(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "frontiers", {"sweep": stored["sweep"]["sweep_id"]})
    widget(at, "selectbox", "frontier_bins").select("level").run()
    assert not at.exception
    by_bin = chart_frames(at, 2)[0]
    problems = stored["problems"].filter(pl.col("problem_id").is_in(stored["runs"]["problem_id"].to_list()))
    levels = problems.filter(pl.col("problem_id").is_in(
        stored["runs"].filter(pl.col("cell_id").is_in(stored["sweep_cells"]["cell_id"].to_list()))["problem_id"].to_list()
    ))  # fmt: skip
    assert sorted(set(by_bin["bin"].to_list())) == sorted(set(levels["level"].to_list()))
    counts = levels.group_by("level").len()
    for level, count in counts.iter_rows():
        assert set(by_bin.filter(pl.col("bin") == level)["n_problems"].to_list()) == {count}


def test_model_comparison_marks_the_crossover(monkeypatch, models_store):
    at = run_page(monkeypatch, models_store, "frontiers")
    engine = store.make_engine(models_store.url)
    with engine.connect() as conn:
        cells = store.read_cells(conn)
        ids = cells["cell_id"].to_list()
        report = analysis.build_report(cells, store.read_candidates(conn, ids), store.read_problem_runs(conn, ids))
    engine.dispose()
    comparison = report.comparison.row(0, named=True)
    assert (comparison["small_model"], comparison["large_model"]) == ("scripted-1b", "scripted-8b")
    assert len(at.get("vega_lite_chart")) == 5
    frames = chart_frames(at, 4)
    points = next(f for f in frames if "envelope_accuracy" in f.columns)
    assert sorted(set(points["model"].to_list())) == ["scripted-1b", "scripted-8b"]
    assert points.height == report.models.height
    sentences = [t for t in texts(at, "text") if t.startswith("arith:")]
    assert len(sentences) == 1
    # the seeded small model with search beats the large one answering once, and overtakes it
    # at matched compute: the caption and the red rule say where
    assert comparison["reference_n"] == 1 and comparison["beats_reference_option"] is not None
    n = comparison["beats_reference_n"]
    acc = round(100 * comparison["beats_reference_accuracy"])
    ref = round(100 * comparison["reference_accuracy"])
    assert f"At {n} generations, " in sentences[0]
    assert f"with scripted-1b reaches {acc}%, above scripted-8b answering once ({ref}%)" in sentences[0]
    assert comparison["overtakes_at_flops"] is not None
    assert "At matched compute scripted-1b is ahead" in sentences[0]
    cross = next(f for f in frames if "label" in f.columns and f["label"][0] == "scripted-1b overtakes scripted-8b")
    assert cross["flops_per_problem"][0] == pytest.approx(comparison["overtakes_at_flops"])
    reference = next(f for f in frames if "label" in f.columns and f["label"][0] == "scripted-8b at n=1")
    assert reference["accuracy"][0] == pytest.approx(comparison["reference_accuracy"])


# ---- compute-optimal ----------------------------------------------------------------------------


def test_compute_optimal_table_is_the_analysis_per_bin_and_budget(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "compute_optimal", {"sweep": stored["sweep"]["sweep_id"]})
    table = frame_of(at, "optimal_table")
    cells = stored["sweep_cells"]
    ids = cells["cell_id"].to_list()
    candidates = stored["candidates"].filter(pl.col("cell_id").is_in(ids))
    runs = stored["runs"].filter(pl.col("cell_id").is_in(ids))
    expected = analysis.build_report(cells, candidates, runs).frontier
    assert table.height == expected.height > 0
    for want, got in zip(expected.iter_rows(named=True), table.iter_rows(named=True), strict=True):
        assert got["difficulty bin"] == want["bin"] and got["n"] == want["budget"]
        assert got["best accuracy"] == pytest.approx(want["optimal_accuracy"])
        assert got["single accuracy"] == pytest.approx(want["single_accuracy"])
        chosen = {want["optimal_chosen_on_0"], want["optimal_chosen_on_1"]} - {None}
        assert set(got["best strategy (fold 0 | fold 1)"].split(" | ")) == (chosen or {"(per bin)"})
    overall = table.filter(pl.col("difficulty bin") == "all")
    assert set(overall["problems"].to_list()) == {8}
    assert len(at.get("vega_lite_chart")) == 1  # the gain heatmap
    bins = frame_of(at, "bins_table")
    assert bins["problems"].sum() == 8


# ---- problem explorer -----------------------------------------------------------------------------


def _beam_cell(stored) -> dict:
    return stored["sweep_cells"].filter((pl.col("strategy") == "beam_search") & (pl.col("n") == 4)).row(0, named=True)


def test_explorer_lists_exactly_the_stored_candidates_and_the_gold_answer(monkeypatch, sweep_store, stored):
    cell = _beam_cell(stored)
    problem_id = stored["runs"].filter(pl.col("cell_id") == cell["cell_id"])["problem_id"].sort()[3]
    at = run_page(monkeypatch, sweep_store, "problems", {"sweep": stored["sweep"]["sweep_id"], "cell": cell["cell_id"], "problem": problem_id})
    want = stored["candidates"].filter((pl.col("cell_id") == cell["cell_id"]) & (pl.col("problem_id") == problem_id)).sort("idx")
    got = frame_of(at, "candidates_table")
    assert got["idx"].to_list() == want["idx"].to_list()
    assert got["answer"].to_list() == want["answer"].to_list()
    assert got["correct"].to_list() == want["correct"].to_list()
    assert got["score"].to_list() == pytest.approx(want["score"].to_list())
    gold = stored["problems"].filter(pl.col("problem_id") == problem_id)["answer"][0]
    assert f"Gold answer: {gold}" in [t.value for t in at.text]  # as text, never Markdown
    problem_text = stored["problems"].filter(pl.col("problem_id") == problem_id)["text"][0]
    assert problem_text in [t.value for t in at.text]

    # the stored verdict of each method at n = N names the candidate the table marks as chosen
    verdicts = stored["verdicts"].filter(
        (pl.col("cell_id") == cell["cell_id"]) & (pl.col("problem_id") == problem_id) & (pl.col("n") == cell["n"])
    )
    for method in ("naive", "weighted", "majority"):
        answer = verdicts.filter(pl.col("method") == method)["answer"][0]
        chosen = got.filter(pl.col("chosen by").str.contains(method))
        assert chosen.height == 1 and chosen["answer"][0] == answer

    # reading a candidate shows its full text
    widget(at, "selectbox", "explorer_candidate").select(int(want["idx"][-1])).run()
    assert want["text"][-1] in [c.value for c in at.code]


def test_explorer_draws_the_search_tree_with_the_selected_path(monkeypatch, sweep_store, stored):
    cell = _beam_cell(stored)
    problem_id = stored["runs"].filter(pl.col("cell_id") == cell["cell_id"])["problem_id"].sort()[0]
    at = run_page(monkeypatch, sweep_store, "problems", {"sweep": stored["sweep"]["sweep_id"], "cell": cell["cell_id"], "problem": problem_id})
    widget(at, "selectbox", "explorer_method").select("weighted").run()
    engine = store.make_engine(sweep_store.url)
    with engine.connect() as conn:
        nodes = store.read_nodes(conn, cell["cell_id"], problem_id)
    engine.dispose()
    frames = chart_frames(at, 0)
    points = next(f for f in frames if "node_id" in f.columns)
    edges = next(f for f in frames if "x2" in f.columns)
    assert sorted(points["node_id"].to_list()) == nodes["node_id"].to_list()
    assert edges.height == nodes.filter(pl.col("parent_id").is_not_null()).height
    # colour = the node's last step score, as stored
    want_scores = dict(zip(nodes["node_id"].to_list(), [s[-1] if len(s) else None for s in nodes["scores"].to_list()], strict=True))
    for node_id, score in zip(points["node_id"].to_list(), points["score"].to_list(), strict=True):
        assert score == pytest.approx(want_scores[node_id])
    # the highlighted path runs root → leaf of the candidate weighted selection picks at n = N
    verdict = stored["verdicts"].filter(
        (pl.col("cell_id") == cell["cell_id"]) & (pl.col("problem_id") == problem_id) & (pl.col("method") == "weighted") & (pl.col("n") == cell["n"])
    )
    cands = stored["candidates"].filter((pl.col("cell_id") == cell["cell_id"]) & (pl.col("problem_id") == problem_id))
    leaf = cands.filter(pl.col("answer") == verdict["answer"][0]).sort("idx")["leaf_node"]
    path = points.filter(pl.col("on_path")).sort("depth")["node_id"].to_list()
    assert path[-1] in leaf.to_list()
    parent = dict(zip(nodes["node_id"].to_list(), nodes["parent_id"].to_list(), strict=True))
    assert parent[path[0]] is None and all(parent[b] == a for a, b in zip(path, path[1:]))
    assert frame_of(at, "path_table")["node_id"].to_list() == path
    # the node detail shows the leaf's own text
    leaf_text = nodes.filter(pl.col("node_id") == path[-1])["text"][0]
    assert leaf_text in [c.value for c in at.code]


def test_explorer_unsolved_filter_lists_only_problems_no_candidate_solved(monkeypatch, sweep_store, stored):
    cell = _beam_cell(stored)
    at = run_page(monkeypatch, sweep_store, "problems", {"sweep": stored["sweep"]["sweep_id"], "cell": cell["cell_id"]})
    widget(at, "radio", "explorer_filter").set_value("unsolved").run()
    assert not at.exception
    solved = (
        stored["candidates"].filter(pl.col("cell_id") == cell["cell_id"]).group_by("problem_id").agg(pl.col("correct").any())
    )
    unsolved = sorted(solved.filter(~pl.col("correct"))["problem_id"].to_list())
    assert unsolved, "the seeded beam search leaves some problem unsolved"
    shown = widget(at, "selectbox", "explorer_problem").options
    assert sorted(o.split(" · ")[0] for o in shown) == unsolved
    assert all(" · 0/" in o for o in shown)


# ---- audit ----------------------------------------------------------------------------------------


def test_audit_shows_spec_hash_version_counts_and_links(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "audit", {"sweep": stored["sweep"]["sweep_id"]})
    sweep = stored["sweep"]
    facts = dict(frame_of(at, "audit_facts").select("field", "value").iter_rows())  # a dataframe: no Markdown in its cells
    assert facts["spec hash"] == sweep["spec_hash"]
    assert facts["code version"] == sweep["code_version"]
    assert facts["status"] == "done" and facts["name"] == "dashboard-test"
    assert sweep_store.spec_text.strip() in [c.value.strip() for c in at.code]
    runs = stored["runs"].filter(pl.col("cell_id").is_in(stored["sweep_cells"]["cell_id"].to_list()))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Candidates"] == f"{runs['n_candidates'].sum():,}"
    assert metrics["Problems done"] == f"{runs.height:,}"
    assert metrics["Tree nodes"] == f"{runs['n_nodes'].sum():,}"
    assert frame_of(at, "audit_cells").height == stored["sweep_cells"].height
    runs_text = " ".join([t.value for t in at.text] + [b.proto.label for b in at.get("link_button")])
    for name, key in (("MLflow run", "mlflow_run_id"), ("Prefect flow run", "prefect_flow_run_id")):
        if sweep[key]:
            assert name in runs_text and sweep[key] in runs_text
        else:
            assert f"{name}: none recorded" in runs_text
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download parquet", "Download csv"]


def test_audit_export_holds_every_stored_candidate(sweep_store, stored):
    import sys

    sys.path.insert(0, str(APP.parent))
    import loaders as data

    archive = zipfile.ZipFile(io.BytesIO(data.export_sweep_zip(sweep_store.url, stored["sweep"]["sweep_id"], "parquet")))
    assert {"sweep.json", "candidates.parquet", "nodes.parquet", "cells.parquet"} <= set(archive.namelist())
    candidates = pl.read_parquet(io.BytesIO(archive.read("candidates.parquet")))
    in_sweep = stored["candidates"].filter(pl.col("cell_id").is_in(stored["sweep_cells"]["cell_id"].to_list()))
    assert candidates.height == in_sweep.height > 0
    assert json.loads(archive.read("sweep.json"))["spec_hash"] == stored["sweep"]["spec_hash"]

    loose = stored["cells"].filter(~pl.col("cell_id").is_in(stored["sweep_cells"]["cell_id"].to_list()))["cell_id"][0]
    archive = zipfile.ZipFile(io.BytesIO(data.export_cell_zip(sweep_store.url, loose, "csv")))
    rows = pl.read_csv(io.BytesIO(archive.read("candidates.csv")))
    assert rows.height == stored["candidates"].filter(pl.col("cell_id") == loose).height == 6 * 4


def test_audit_of_a_cell_outside_sweeps(monkeypatch, sweep_store, stored):
    at = run_page(monkeypatch, sweep_store, "audit", {"sweep": "__unswept__"})
    loose = stored["cells"].filter(~pl.col("cell_id").is_in(stored["sweep_cells"]["cell_id"].to_list())).row(0, named=True)
    facts = dict(frame_of(at, "audit_facts").select("field", "value").iter_rows())
    assert loose["cell_id"] in facts["cell"] and loose["cell_id"] in facts["spec hash"]
    spec = json.loads(next(c.value for c in at.code if c.language == "json"))
    assert spec == json.loads(loose["spec"])
    assert re.fullmatch(r"\d+", {m.label: m.value for m in at.metric}["Candidates"].replace(",", ""))
    assert {m.label: m.value for m in at.metric}["Candidates"] == "24"


# ---- a learned verifier ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def learned(learned_store):
    """The learned store's sweep, cells and the cell the matching model was trained from."""
    engine = store.make_engine(learned_store.url)
    with engine.connect() as conn:
        sweep = store.read_sweeps(conn).row(0, named=True)
        cells = store.read_cells(conn)
        sweep_cells = store.read_cells(conn, sweep["sweep_id"])
    engine.dispose()
    trained_from = cells.filter(pl.col("verifier") == "scripted")["cell_id"][0]
    return {"sweep": sweep, "cells": cells, "sweep_cells": sweep_cells, "trained_from": trained_from}


def table_with(at: AppTest, column: str, rank: int = 0) -> pl.DataFrame:
    found = [df.value for df in at.dataframe if column in df.value.columns]
    assert len(found) > rank, f"no table with a {column!r} column"
    return pl.from_pandas(found[rank])


def test_audit_shows_a_learned_verifiers_metrics_and_data_card(monkeypatch, learned_store, learned):
    monkeypatch.setenv("TTSCALE_HOME", str(learned_store.home))  # the model cache is $TTSCALE_HOME/models
    sweep_id = learned["sweep"]["sweep_id"]
    at = run_page(monkeypatch, learned_store, "audit", {"sweep": sweep_id})
    assert learned_store.learned in texts(at, "text")  # the stored name in full
    assert not any(t.startswith(("fingerprint mismatch", "not read", "missing", "unreadable")) for t in texts(at, "text"))
    folder = learned_store.home / "models" / "loop"
    facts = dict(next(f for f in (pl.from_pandas(df.value) for df in at.dataframe if "field" in df.value.columns)
                      if "model folder" in f["field"].to_list()).iter_rows())  # fmt: skip
    fingerprint = learned_store.learned.rpartition("@")[2]
    assert facts["model folder"] == str(folder) and facts["fingerprint"].startswith(f"{fingerprint} — matches the folder")
    assert facts["display name"] == f"learned:loop@{fingerprint[:8]}" and facts["data from"] == "loop-train"
    metrics = json.loads((folder / "metrics.json").read_text())
    shown = {r["split"]: r for r in table_with(at, "step AUC").iter_rows(named=True)}
    assert set(shown) == {"train", "validation"}
    for key, column in (("step_auc", "step AUC"), ("step_auc_within", "step AUC within problems"), ("final_auc", "final AUC"),
                        ("final_auc_within", "final AUC within problems"), ("brier", "Brier"), ("ece", "ECE")):  # fmt: skip
        assert shown["validation"][column] == pytest.approx(metrics["validation"][key]), column
    assert shown["train"]["step AUC"] == pytest.approx(metrics["train"]["step_auc"])
    balance = {r["split"]: r for r in table_with(at, "hard positive share").iter_rows(named=True)}
    card = metrics["dataset"]["card"]
    assert balance["all"]["hard positive share"] == pytest.approx(card["balance"]["hard_positive_share"])
    assert balance["validation"]["problems"] == card["splits"]["validation"]["problems"] == 7
    trained = table_with(at, "in this store")
    assert dict(zip(trained["cell_id"], trained["in this store"], strict=True)) == {learned["trained_from"]: "yes", "feedfacefeedface": "no"}
    [(page, label, query)] = [link for link in page_links(at) if link[1].startswith("Audit:")]
    assert page == "audit" and query == {"sweep": sweep_id, "cell": learned["trained_from"]}
    assert any(c.startswith("Read from the model folder the stored name points to") for c in texts(at, "caption"))


def test_audit_of_a_cell_whose_learned_folder_changed_says_why_it_is_not_shown(monkeypatch, learned_store, learned, tmp_path):
    monkeypatch.setenv("TTSCALE_HOME", str(learned_store.home))
    at = run_page(monkeypatch, learned_store, "audit", {"sweep": "__unswept__"})
    edited = learned["cells"].filter(pl.col("verifier").str.contains("/models/edited@"))["verifier"][0]
    now = fingerprint_of_folder(learned_store.home / "models" / "edited")
    assert f"fingerprint mismatch: the folder now holds {now}, the cell ran with {edited[-12:]} (retrained or edited since)" in texts(at, "text")
    assert not [df for df in at.dataframe if "step AUC" in df.value.columns]  # nothing read from the folder
    # served from elsewhere, the same store's folders lie outside the allowed roots
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path))
    at = run_page(monkeypatch, learned_store, "audit", {"sweep": learned["sweep"]["sweep_id"]})
    assert any(t.startswith("not read: ") and "is not under an allowed root" in t for t in texts(at, "text"))
    assert not [df for df in at.dataframe if "step AUC" in df.value.columns]


def fingerprint_of_folder(folder: Path) -> str:
    from ttscale.reward_model import fingerprint

    return fingerprint(folder)


def test_findings_compare_verifiers_at_equal_budgets_by_their_short_names(monkeypatch, learned_store, learned):
    monkeypatch.setenv("TTSCALE_HOME", str(learned_store.home))
    sweep_id = learned["sweep"]["sweep_id"]
    at = run_page(monkeypatch, learned_store, "findings", {"sweep": sweep_id})
    report = expected_report(learned_store, learned["sweep_cells"]["cell_id"].to_list())
    want = report.verifier_gain
    assert want.height and set(want["verifier"].to_list()) == {"scripted", learned_store.learned}
    got = table_with(at, "gain (points)")
    short = f"learned:loop@{learned_store.learned[-12:-4]}"
    assert set(got["verifier"].to_list()) == {"scripted", short} and set(got["reference"].to_list()) == {"scripted", short}
    assert got["gain (points)"].to_list() == pytest.approx([100 * g for g in want["gain"].to_list()])
    assert got["accuracy"].to_list() == pytest.approx(want["accuracy"].to_list())
    assert got["problems"].to_list() == want["n_problems"].to_list()
    assert any(c.startswith("Options that differ only in their verifier") for c in texts(at, "caption"))
    [lead] = [f for f in analysis_findings.findings(report) if f.kind == "verifier_gain"]
    assert lead.text in [sentence for sentence, _ in finding_blocks(at)]
    # no table or sentence on the page spells the model folder's path; the audit page does
    folder = str(learned_store.home / "models")
    shown = texts(at, "text") + [str(v) for df in at.dataframe for col in df.value.columns for v in df.value[col].tolist()]
    assert not any(folder in t for t in shown)
    explorer = run_page(monkeypatch, learned_store, "problems", {"sweep": sweep_id})
    labels = widget(explorer, "selectbox", "explorer_cell").options  # as shown: the cell labels
    assert any(f"+ {short} n=4" in label for label in labels) and not any(folder in label for label in labels)


def test_dashboard_command_refuses_a_store_that_is_not_there(tmp_path):
    from tests.cli import ttscale

    missing = tmp_path / "nowhere.db"
    got = ttscale("dashboard", "--db", f"sqlite:///{missing}", "--port", "1")
    assert got.returncode == 2
    assert got.stderr.strip() == f"error: --db: no SQLite store at {missing}; run `ttscale db upgrade` or a sweep first"
    assert not missing.exists()  # checking did not create an empty store


def test_cached_results_follow_what_the_cells_store(tmp_path):
    """A running cell that stores another shard is re-analysed once the (short-lived) cell list
    shows it; until then nothing is recomputed."""
    import sys

    sys.path.insert(0, str(APP.parent))
    import loaders as data

    from ttscale.data import load_problems
    from ttscale.runner import run_shard
    from ttscale.settings import Settings
    from ttscale.spec import CellSpec

    url = f"sqlite:///{tmp_path / 'growing.db'}"
    settings = Settings.from_env({"TTSCALE_HOME": str(tmp_path / "home"), "TTSCALE_DATABASE_URL": url})
    cell = CellSpec.model_validate(
        {"model": "scripted", "verifier": "scripted", "strategy": {"name": "best_of_n"}, "n": 4, "dataset": {"name": "arith", "limit": 8}}
    )
    problems = load_problems(cell.dataset)
    engine = store.open_engine(url)
    run_shard(engine, cell, [p.id for p in problems[:4]], settings)
    ids = (cell.cell_id,)
    assert data.analyse(url, ids).n_candidates == 16
    assert data.cell_problems(url, cell.cell_id).height == 4

    run_shard(engine, cell, [p.id for p in problems[4:]], settings)
    engine.dispose()
    assert data.analyse(url, ids).n_candidates == 16  # the cell list is still the cached one
    data.cells.clear()  # what its 15 s TTL does
    assert data.analyse(url, ids).n_candidates == 32
    assert data.cell_problems(url, cell.cell_id)["problem_id"].to_list() == sorted(p.id for p in problems)
