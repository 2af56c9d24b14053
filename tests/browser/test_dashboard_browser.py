"""The dashboard in headless Chromium: a real `ttscale dashboard` on a free loopback port,
reading a store seeded by a real sweep (`tests/dashboard_store.py`). Each page is loaded,
its charts are waited for and checked by their rendered SVG marks, the explorer is driven by
clicks (a problem, then a node of its tree), the export is downloaded, and a screenshot of
every page is saved under the test's tmp dir."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import zipfile
from pathlib import Path

import polars as pl
import pytest

from tests import dashboard_store
from tests.cli import TTSCALE
from tests.dashboard_server import wait_until_healthy
from ttscale import analysis, store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHART_SVG = '[data-testid="stVegaLiteChart"] svg'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    return dashboard_store.sweep_store(tmp_path_factory.mktemp("dashboard-browser"))


@pytest.fixture(scope="module")
def stored(seeded):
    engine = store.make_engine(seeded.url)
    with engine.connect() as conn:
        sweep = store.read_sweeps(conn).row(0, named=True)
        cells = store.read_cells(conn, sweep["sweep_id"])
        ids = cells["cell_id"].to_list()
        out = {
            "sweep": sweep,
            "cells": cells,
            "candidates": store.read_candidates(conn, ids),
            "runs": store.read_problem_runs(conn, ids),
            "problems": store.read_problems(conn),
        }
    engine.dispose()
    return out


@pytest.fixture(scope="module")
def server(seeded, tmp_path_factory):
    """`ttscale dashboard` on a free port, reading the store through a read-only SQLite
    connection (as a team install reads through a read-only role); stopped after the module."""
    port = free_port()
    read_only = f"sqlite:///file:{seeded.home / 'ttscale.db'}?mode=ro&uri=true"
    log = tmp_path_factory.mktemp("dashboard-server") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSCALE_DASHBOARD")}
    env.update(seeded.env)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [TTSCALE, "dashboard", "--port", str(port), "--db", read_only],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, log, timeout_s=60)
    except AssertionError:
        proc.kill()
        raise
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1400}, accept_downloads=True)
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        yield tab
        context.close()
        browser.close()


def open_page(tab, url: str, title: str, n_charts: int, shots: Path, name: str) -> None:
    tab.goto(url)
    tab.get_by_role("heading", name=title).first.wait_for()
    if n_charts:
        tab.locator(CHART_SVG).nth(n_charts - 1).wait_for()
    settle(tab)
    assert tab.locator(CHART_SVG).count() == n_charts
    shoot(tab, shots, name)


def settle(tab) -> None:
    """Until Streamlit's script run is over (the status widget leaves) and charts have drawn."""
    tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    tab.wait_for_timeout(400)


def shoot(tab, shots: Path, name: str) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    charts = tab.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        charts.nth(i).screenshot(path=str(shots / f"{name}-chart{i}.png"))


def selected(tab, label: str) -> str:
    """The value a selectbox shows."""
    return tab.get_by_role("combobox", name=label, exact=True).input_value()


def choose(tab, label: str, text: str) -> None:
    """Pick the option of a selectbox that contains `text`, as a user does: open, type, click."""
    box = tab.get_by_role("combobox", name=label, exact=True)
    box.scroll_into_view_if_needed()
    box.click()
    box.fill(text)
    tab.get_by_role("option", name=re.compile(re.escape(text))).first.click()


def marks(tab, chart: int, kind: str):
    """The rendered items of one mark type (`symbol`, `line`, `rule`, `rect`, `area`) in a chart."""
    return tab.locator(CHART_SVG).nth(chart).locator(f"g.mark-{kind}.role-mark > path, g.mark-{kind}.role-mark > line")


def test_dashboard_pages_render_in_chromium(page, server, seeded, stored, tmp_path):
    shots = tmp_path / "screenshots"
    sweep = stored["sweep"]
    cells = stored["cells"]

    # Sweeps: the sweep with its status, and its cells
    open_page(page, f"{server}/", "Sweeps", 0, shots, "sweeps")
    assert selected(page, "Cells of sweep") == f"dashboard-test · {sweep['sweep_id']}"
    assert page.get_by_text("Cells run outside sweeps").is_visible()
    assert page.get_by_text(re.compile(r"Store: sqlite · ttscale\.db · read-only")).first.is_visible()  # the read-only connection, no path
    assert page.locator('[data-testid="stMetricValue"]').nth(2).inner_text() == str(cells.height + 1)

    # Frontiers: four charts; the accuracy-vs-n chart draws one dot per (option, n)
    open_page(page, f"{server}/frontiers?sweep={sweep['sweep_id']}", "Frontiers", 4, shots, "frontiers")
    dots = marks(page, 0, "symbol")
    assert dots.count() == 3 * 3 + 3 * 2  # naive/weighted/majority: best_of_n at n=1, 2, 4; beam_search at n=2, 4
    assert marks(page, 0, "line").count() == 3 * 2  # one line per strategy × selection
    legend = page.locator(CHART_SVG).nth(0).locator("text").evaluate_all("els => els.map(e => e.textContent)")
    assert {"beam_search", "best_of_n", "naive", "weighted", "majority"} <= {t.strip() for t in legend}
    labels = [dots.nth(i).get_attribute("aria-label") or "" for i in range(dots.count())]
    assert any("option: beam_search:weighted" in label and "n: 4" in label for label in labels)
    assert page.get_by_text(re.compile(rf"scripted on {re.escape(seeded.dataset)}: at 4 generations, .+ is best with \d+%")).is_visible()
    assert page.get_by_text("needs at least two models").is_visible()

    # Compute-optimal: the table and the gain heatmap (one rect per bin × budget)
    open_page(page, f"{server}/compute_optimal?sweep={sweep['sweep_id']}", "Compute-optimal strategy per difficulty", 1, shots, "compute_optimal")
    frontier = analysis.build_report(cells, stored["candidates"], stored["runs"]).frontier
    assert marks(page, 0, "rect").count() == frontier.filter(pl.col("bin") != "all").height > 0
    best = frontier.filter(pl.col("bin") == "all").sort("budget").row(-1, named=True)
    assert page.get_by_text(f"{100 * best['optimal_accuracy']:.0f}%").first.is_visible()

    # Problem explorer: a beam-search cell; pick another problem, then click a node of its tree
    beam = cells.filter((pl.col("strategy") == "beam_search") & (pl.col("n") == 4)).row(0, named=True)
    problem_ids = sorted(stored["runs"].filter(pl.col("cell_id") == beam["cell_id"])["problem_id"].to_list())
    url = f"{server}/problems?sweep={sweep['sweep_id']}&cell={beam['cell_id']}&problem={problem_ids[0]}"
    open_page(page, url, "Problem explorer", 1, shots, "problems")
    gold = stored["problems"].filter(pl.col("problem_id") == problem_ids[2])["answer"][0]
    choose(page, "Problem", problem_ids[2])
    page.get_by_text(f"Problem {problem_ids[2]}").first.wait_for()
    page.locator(CHART_SVG).first.wait_for()
    settle(page)
    assert page.get_by_text(f"Gold answer: {gold}").is_visible()

    engine = store.make_engine(seeded.url)
    with engine.connect() as conn:
        nodes = store.read_nodes(conn, beam["cell_id"], problem_ids[2])
    engine.dispose()
    points = marks(page, 0, "symbol")
    assert points.count() == nodes.height
    edges = marks(page, 0, "rule")
    assert edges.count() == nodes.filter(pl.col("parent_id").is_not_null()).height
    thick = [edges.nth(i).get_attribute("stroke-width") for i in range(edges.count())]
    on_path = [i for i in range(points.count()) if "state: on selected path" in (points.nth(i).get_attribute("aria-label") or "")]
    assert on_path and thick.count("3") == len(on_path) - 1  # root → leaf of the selected candidate
    shoot(page, shots, "problems-tree")

    # click a node off the selected path: its text is shown below the tree
    target = None
    for i in range(points.count()):
        label = points.nth(i).get_attribute("aria-label") or ""
        if "state: on selected path" not in label:
            target = i
            break
    assert target is not None
    node_id = int(re.search(r"node_id: (\d+)", points.nth(target).get_attribute("aria-label")).group(1))
    bbox = points.nth(target).bounding_box()
    page.mouse.click(bbox["x"] + bbox["width"] / 2, bbox["y"] + bbox["height"] / 2)
    page.get_by_text(re.compile(rf"^node {node_id} · depth")).wait_for()
    settle(page)
    shoot(page, shots, "problems-node")
    text = nodes.filter(pl.col("node_id") == node_id)["text"][0].strip().splitlines()[0]
    assert page.locator('[data-testid="stCode"]').filter(has_text=text).count() >= 1

    # Audit: spec hash, spec, and the CSV export downloads every candidate of the sweep
    open_page(page, f"{server}/audit?sweep={sweep['sweep_id']}", "Audit", 0, shots, "audit")
    assert page.get_by_text(sweep["spec_hash"]).is_visible()
    assert page.get_by_text(sweep["code_version"]).first.is_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download csv").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    candidates = pl.read_csv(io.BytesIO(archive.read("candidates.csv")))
    assert candidates.height == stored["candidates"].height
    assert json.loads(archive.read("sweep.json"))["sweep_id"] == sweep["sweep_id"]
    shoot(page, shots, "audit-downloaded")
    print(f"screenshots: {shots}")

