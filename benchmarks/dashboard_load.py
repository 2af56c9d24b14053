"""Benchmark: how long each dashboard page takes to load its data, cold and cached.

    python benchmarks/dashboard_load.py [--smoke] [--db URL] [--repeat 3] [--no-record]

Builds a synthetic sweep of 500 problems × 256 candidates × 4 strategies (best_of_n, dvts,
beam_search, majority) × 2 models = 1,024,000 candidates with verifier scores
(`benchmarks/synthetic_sweep.py`), plus a search tree of 340 nodes per problem for one beam-search
cell, bulk-loaded straight into the store's tables. Then, for each page, in this process:

- `data path`: exactly the loaders (`dashboard/data.py`), views and chart builders the page
  calls, timed cold (Streamlit's caches cleared: a fresh server) and cached (the next
  visit); `--repeat` runs each after a warm-up, median reported;
- `browser`: a real `ttscale dashboard` on a free loopback port, each page loaded in headless
  Chromium until it has drawn everything, cold (the first visit to a freshly started server)
  and cached, same counts. (Streamlit's `AppTest` is not used here: it rescans every
  installed package's metadata on each run, ~1-3 s that a real server spends once at start.)

Target: < 3 s per page after the first load. Figures are appended to benchmarks/RESULTS.md
(date, machine, git sha, versions, command). `--smoke` runs a tiny size for CI. Default
store: a temporary SQLite file; pass a PostgreSQL URL (an empty store) for the team figure.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import _common as c

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "dashboard"
SIZES = {"full": {"n_problems": 500, "n": 256}, "smoke": {"n_problems": 30, "n": 16}}
STRATEGIES = ("best_of_n", "dvts", "beam_search", "majority")
DATASET = "synthetic-math"


# ---- building the store ---------------------------------------------------------------------------


def build_store(url: str, size: str) -> dict:
    """Register the sweep and bulk-load its rows; returns ids and counts."""
    import polars as pl

    from ttscale import store
    from synthetic_sweep import synthetic_sweep
    from ttscale.spec import CellSpec, DatasetSpec, SweepSpec
    from ttscale.store import schema
    from ttscale.store.bulk import bulk_insert

    cfg = SIZES[size]
    n = cfg["n"]
    t0 = time.perf_counter()
    sweep = synthetic_sweep(n_problems=cfg["n_problems"], n=n, strategies=STRATEGIES, seeds=(0,), dataset=DATASET)
    generate_s = time.perf_counter() - t0
    spec = SweepSpec.model_validate(
        {
            "name": f"bench-dashboard-{size}",
            "models": sorted(set(sweep.cells["model"].to_list())),
            "verifiers": ["synthetic_prm"],
            "strategies": [json.loads(s)["strategy"] for s in sweep.cells.unique("strategy", keep="first")["spec"].to_list()],
            "budgets": [n],
            "datasets": [{"name": DATASET}],
        }
    )
    engine = store.make_engine(url, create_dirs=True)
    store.upgrade(engine)
    now = datetime.now(UTC)
    beam_cell = sweep.cells.filter(pl.col("strategy") == "beam_search")["cell_id"][0]
    levels = _tree_levels(n)
    t0 = time.perf_counter()
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, spec, spec.model_dump_json(), "benchmarks/dashboard_load.py")
        for row in sweep.cells.iter_rows(named=True):
            store.register_cell(conn, CellSpec.model_validate_json(row["spec"]), sweep_id=sweep_id,
                                policy_params=row["policy_params"], verifier_params=row["verifier_params"])  # fmt: skip
            store.set_cell_status(conn, row["cell_id"], "running", started_at=now)
        problems = sweep.problems.select(
            "dataset", "problem_id", pl.format("Synthetic problem {}", pl.col("problem_id")).alias("text"),
            "answer", "level", "subject", pl.lit("{}").alias("metadata"),
        )  # fmt: skip
        n_nodes = sum(levels)
        runs = sweep.runs.with_columns(
            pl.lit(DATASET).alias("dataset"),
            pl.lit(1).alias("n_policy_calls"),
            # a synthetic sweep has no prefix cache: every prompt token is computed
            pl.col("n_prompt_tokens").alias("n_prompt_tokens_computed"),
            pl.col("policy_flops").alias("policy_flops_computed"),
            pl.lit(n).alias("n_candidates"),
            pl.when(pl.col("cell_id") == beam_cell).then(n_nodes).otherwise(0).alias("n_nodes"),
            pl.lit(now).alias("written_at"),
        )
        bulk_insert(conn, schema.problems, problems.select([c.name for c in schema.problems.columns]).iter_rows())
        bulk_insert(conn, schema.problem_runs, runs.select([c.name for c in schema.problem_runs.columns]).iter_rows())
        leaf_base = n_nodes - levels[-1]
        candidates = sweep.candidates.with_columns(
            pl.format("## Step 1\nsynthetic candidate {} of {}\n\nThe answer is {}", pl.col("idx"), pl.col("problem_id"), pl.col("answer").fill_null("?")).alias("text"),
            pl.when(pl.col("answer").is_null()).then(None).otherwise(pl.lit("boxed")).alias("answer_method"),
            pl.format("[{}]", pl.col("score").fill_null(0.0)).alias("step_scores"),
            pl.lit("eos").alias("finish_reason"),
            pl.col("policy_flops").alias("policy_flops_computed"),
            pl.when(pl.col("cell_id") == beam_cell).then(pl.col("idx") + leaf_base).otherwise(pl.col("idx")).alias("leaf_node"),
        ).select([c.name for c in schema.candidates.columns])  # fmt: skip
        for chunk in candidates.iter_slices(200_000):
            bulk_insert(conn, schema.candidates, chunk.iter_rows())
        nodes = _tree(beam_cell, sweep.problems["problem_id"].to_list(), levels)
        for chunk in nodes.iter_slices(200_000):
            bulk_insert(conn, schema.nodes, chunk.select([c.name for c in schema.nodes.columns]).iter_rows())
        for cell_id in sweep.cells["cell_id"].to_list():
            store.set_cell_status(conn, cell_id, "done")
        store.set_sweep_status(conn, sweep_id, "done")
    load_s = time.perf_counter() - t0
    engine.dispose()
    return {
        "sweep_id": sweep_id,
        "beam_cell": beam_cell,
        "problem_id": sweep.problems["problem_id"][0],
        "n_cells": sweep.cells.height,
        "n_candidates": sweep.candidates.height,
        "n_nodes": nodes.height,
        "generate_s": round(generate_s, 1),
        "load_s": round(load_s, 1),
    }


def _tree_levels(n: int) -> list[int]:
    """Nodes per depth, ending with `n` leaves, each level a quarter of the next."""
    levels = [n]
    while levels[0] > 4:
        levels.insert(0, max(1, levels[0] // 4))
    return levels


def _tree(cell_id: str, problem_ids: list[str], levels: list[int]):
    """One synthetic beam-search tree per problem: `levels[d]` nodes at depth d, each node's
    parent the node at index // 4 of the level above; scores in [0, 1]."""
    import numpy as np
    import polars as pl

    ids, parents, depths = [], [], []
    start = 0
    for depth, count in enumerate(levels):
        prev_start = start - (levels[depth - 1] if depth else 0)
        for i in range(count):
            ids.append(start + i)
            parents.append(None if depth == 0 else prev_start + min(i // 4, levels[depth - 1] - 1))
            depths.append(depth)
        start += count
    per = len(ids)
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, per * len(problem_ids))
    return pl.DataFrame(
        {
            "cell_id": cell_id,
            "problem_id": np.repeat(problem_ids, per),
            "node_id": np.tile(ids, len(problem_ids)),
            "parent_id": pl.Series(parents * len(problem_ids), dtype=pl.Int64),
            "depth": np.tile(depths, len(problem_ids)),
            "kind": "step",
            "text": "## Step\nsynthetic step\n\n",
            "n_prompt_tokens": 120,
            "n_cached_prompt_tokens": 0,
            "n_generated_tokens": 20,
            "n_lookahead_tokens": 0,
            "scores": [f"[{s:.4f}]" for s in scores],
            "n_verifier_tokens": 20,
            "finish_reason": "step",
            "selected": True,
            "pruned": False,
            "weight": pl.Series([None] * (per * len(problem_ids)), dtype=pl.Float64),  # beam search: no particle weights
        }
    )


# ---- the timed paths --------------------------------------------------------------------------------


def page_paths(url: str, ids: dict) -> dict[str, Callable[[], object]]:
    """Per page, a function doing what the page does between its widgets: load and shape."""
    sys.path.insert(0, str(DASHBOARD))
    import charts
    import finding_views
    import loaders as data
    import polars as pl
    import views

    from ttscale.analysis import budgets

    def sweeps():
        now = datetime.now(UTC)
        cells = data.cells(url)
        progress = views.cell_progress(cells, now)
        return views.sweep_progress(data.sweeps(url), progress, data.memberships(url), now)

    def scope_ids() -> tuple[str, ...]:
        members = data.memberships(url)
        return tuple(sorted(members.filter(pl.col("sweep_id") == ids["sweep_id"])["cell_id"].to_list()))

    def findings():
        data.sweeps(url), data.cells(url)
        result = data.analyse(url, scope_ids(), "oracle")
        found = data.findings(url, scope_ids(), "oracle")
        sections = finding_views.finding_sections(list(found.findings), found.cells, ids["sweep_id"])
        return sections, finding_views.verifier_table(result.report.verifiers, data.cells(url)), sweeps()

    def frontiers():
        data.sweeps(url), data.cells(url)
        result = data.analyse(url, scope_ids(), "oracle")
        lines = views.accuracy_lines(result.report.accuracy, result.report.models)
        views.frontier_captions(lines), views.optimal_captions(result.report.frontier)
        views.comparison_captions(result.report.comparison)
        specs = [
            charts.accuracy_vs_budget(lines, x="n"),
            charts.accuracy_vs_budget(lines, x="flops"),
            charts.accuracy_by_bin(result.bin_accuracy),
            charts.compute_optimal_curve(result.report.frontier),
            charts.model_comparison(result.report.models, result.report.comparison, DATASET),
        ]
        return [s.to_dict() for s in specs]

    def compute_optimal():
        data.sweeps(url), data.cells(url)
        result = data.analyse(url, scope_ids(), "oracle")
        table = views.optimal_table(result.report.frontier)
        return table, charts.gain_heatmap(result.report.frontier.filter(pl.col("model") == "small-1b")).to_dict()

    def problems():
        data.sweeps(url), data.cells(url)
        listing = data.cell_problems(url, ids["beam_cell"])
        view = data.problem_view(url, ids["beam_cell"], ids["problem_id"], DATASET)
        n = budgets(view.candidates.height)[-1]
        views.candidate_table(view.candidates, view.verdicts, n)
        leaf = view.candidates["leaf"][0]
        points, edges = views.tree_layout(view.nodes, views.path_to(view.nodes, leaf))
        return listing, charts.search_tree(points, edges).to_dict()

    def audit():
        data.sweeps(url)
        cells = data.cells(url).filter(pl.col("cell_id").is_in(list(scope_ids())))
        runs = data.cell_runs(url, tuple(cells["cell_id"].to_list()))
        quality = finding_views.verifier_table(data.verifier_quality(url, tuple(cells["cell_id"].to_list())), data.cells(url))
        return views.audit_counts(cells, runs), views.cell_timings(cells, runs), quality

    return {
        "findings": findings, "sweeps": sweeps, "frontiers": frontiers, "compute_optimal": compute_optimal,
        "problems": problems, "audit": audit,
    }  # fmt: skip


def clear_caches() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_data(url: str, ids: dict, repeat: int) -> dict:
    """The data path of every page in this process: cold (caches cleared) and cached."""
    paths = page_paths(url, ids)
    out = {}
    for page, fn in paths.items():
        clear_caches()
        fn()  # warm-up: imports, the OS page cache
        cold = []
        for _ in range(repeat):
            clear_caches()
            cold.append(timed(fn))
        cached = [timed(fn) for _ in range(repeat)]
        out[page] = {"data_cold_s": statistics.median(cold), "data_cached_s": statistics.median(cached)}
        print(page, json.dumps({k: round(v, 3) for k, v in out[page].items()}), file=sys.stderr)
    return out


# page → (URL path, title, charts it draws, the element it draws last)
BROWSER_PAGES = {
    "findings": ("", "Findings", 0, ("link", "All sweeps and their cells")),
    "sweeps": ("sweeps", "Sweeps", 0, ("heading", "Cells run outside sweeps")),
    "frontiers": ("frontiers", "Frontiers", 5, ("heading", "Small model with search vs large model")),
    "compute_optimal": ("compute_optimal", "Compute-optimal strategy per difficulty", 2, ("heading", "Difficulty bins")),
    "problems": ("problems", "Problem explorer", 1, ("text", "Selected path")),
    "audit": ("audit", "Audit", 0, ("button", "Download csv")),
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(url: str) -> tuple[subprocess.Popen, str]:
    import urllib.request

    port = _free_port()
    ttscale = str(Path(sys.executable).with_name("ttscale"))
    proc = subprocess.Popen([ttscale, "dashboard", "--port", str(port), "--db", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, base
        except OSError:
            time.sleep(0.3)
    os.killpg(proc.pid, 9)
    raise SystemExit("the dashboard did not start")


def _drawn(tab, title: str, n_charts: int, last: tuple[str, str]) -> None:
    """Until the page's script run is over and everything it draws is on screen."""
    tab.get_by_role("heading", name=title).first.wait_for()
    kind, name = last
    (tab.get_by_text(name) if kind == "text" else tab.get_by_role(kind, name=name)).first.wait_for()
    if n_charts:
        tab.locator('[data-testid="stVegaLiteChart"] svg').nth(n_charts - 1).wait_for()
    tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def _stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=30)


def measure_browser(url: str, ids: dict, repeat: int) -> dict:
    """Every page of a real `ttscale dashboard` in headless Chromium, from navigation until
    the page has drawn everything: cold = the first visit after the server started (empty
    caches; a fresh server per run), cached = later visits to a warm server."""
    from urllib.parse import urlencode

    from playwright.sync_api import sync_playwright

    query = urlencode({"sweep": ids["sweep_id"], "cell": ids["beam_cell"], "problem": ids["problem_id"]})
    out: dict[str, dict] = {page: {} for page in BROWSER_PAGES}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

        def visit(tab, base: str, page: str) -> float:
            path, title, n_charts, last = BROWSER_PAGES[page]
            t0 = time.perf_counter()
            tab.goto(f"{base}/{path}?{query}")
            _drawn(tab, title, n_charts, last)
            return time.perf_counter() - t0

        def new_tab():
            tab = browser.new_page(viewport={"width": 1500, "height": 1400})
            tab.set_default_timeout(600_000)
            return tab

        proc, base = _start_server(url)  # warm-up of the OS page cache and the imports
        try:
            tab = new_tab()
            for page in BROWSER_PAGES:
                visit(tab, base, page)
            tab.close()
        finally:
            _stop_server(proc)
        for page in BROWSER_PAGES:
            cold = []
            for _ in range(repeat):
                proc, base = _start_server(url)
                try:
                    tab = new_tab()
                    cold.append(visit(tab, base, page))
                    tab.close()
                finally:
                    _stop_server(proc)
            out[page]["browser_cold_s"] = statistics.median(cold)
        proc, base = _start_server(url)
        try:
            tab = new_tab()
            for page in BROWSER_PAGES:
                visit(tab, base, page)
                out[page]["browser_cached_s"] = statistics.median(visit(tab, base, page) for _ in range(repeat))
                print(page, json.dumps({k: round(v, 3) for k, v in out[page].items()}), file=sys.stderr)
        finally:
            _stop_server(proc)
        browser.close()
    return out


# ---- recording ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = c.store_benchmark_parser(__doc__, db_help="store URL (default: a temporary SQLite file); must be empty").parse_args(argv)
    size = "smoke" if args.smoke else "full"
    warnings.filterwarnings("ignore")
    import logging

    from streamlit import logger as st_logger

    st_logger.set_log_level("error")
    logging.getLogger("ttscale").setLevel(logging.WARNING)

    url, _ = c.store_url(args.db, "ttscale-bench-dash-")
    ids = build_store(url, size)
    print(f"data: {ids}", file=sys.stderr)
    load_before = os.getloadavg()[0]
    data_figures = measure_data(url, ids, args.repeat)
    browser_figures = measure_browser(url, ids, args.repeat)
    figures = {page: {**data_figures[page], **browser_figures[page]} for page in data_figures}
    load_after = os.getloadavg()[0]
    worst = max(f["browser_cached_s"] for f in figures.values())
    print(json.dumps({"data": ids, "pages": figures}, indent=2))
    if args.no_record:
        return
    command = "python benchmarks/dashboard_load.py" + (" --smoke" if args.smoke else "") + (
        " --db postgresql+psycopg://…" if url.startswith("postgresql") else ""
    )
    engine = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    rows = "\n".join(
        f"| {page} | {f['data_cold_s']:.2f} | {f['data_cached_s']:.3f} | {f['browser_cold_s']:.2f} | **{f['browser_cached_s']:.2f}** |"
        for page, f in figures.items()
    )
    text = f"""## dashboard_load ({size}, {engine}) — {c.now_utc()}

- machine: {c.machine_line(gpu=False)}
- git: {c.git_sha()}; {c.versions_line("streamlit", "altair", "polars", "sqlalchemy", store_url=url)}
- command: `{command}` (per page: warm-up + {args.repeat} runs cold — Streamlit caches cleared — and {args.repeat} cached; medians)
- data: {ids["n_cells"]} cells ({len(STRATEGIES)} strategies × 2 models, N = {SIZES[size]["n"]}) × {SIZES[size]["n_problems"]} problems = {ids["n_candidates"]:,} candidates, {ids["n_nodes"]:,} tree nodes (one beam-search cell); generated in {ids["generate_s"]} s, bulk-loaded in {ids["load_s"]} s
- load average (1 min) at start / end of the timed part: {load_before:.1f} / {load_after:.1f} (the machine is shared: cold figures rise with it)
- target: < 3 s per page after the first load; worst cached page in the browser: **{worst:.2f} s**

| page | data path cold (s) | data path cached (s) | browser cold (s) | browser cached (s) |
|---|---|---|---|---|
{rows}

Data path = the page's loaders, views and chart builders, in the benchmark's process. Browser =
a real `ttscale dashboard` in headless Chromium, from navigation until the page has drawn its last
element and every chart (cold: the first visit after the server started, a fresh server per run). Findings, frontiers and compute-optimal share one cached analysis (`data.analyse`) of all
{ids["n_candidates"]:,} candidates, so whichever is opened first pays for it.
"""
    c.record(text)


if __name__ == "__main__":
    main()
