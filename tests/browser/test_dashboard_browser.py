"""The dashboard in headless Chromium: a real `ttscale dashboard` on a free loopback port,
reading a store seeded by a real sweep (`tests/dashboard_store.py`). Each page is loaded,
its charts are waited for and checked by their rendered SVG marks, the findings page's link to
the candidates behind a finding is followed, the explorer is driven by clicks (a problem, then
a node of its tree), the export is downloaded, and a screenshot of every page is saved under
the test's tmp dir.

Every check waits for its condition (Playwright's `expect`, up to `WAIT_MS`): on a loaded
machine a page can take seconds to draw, and a check that reads the page once can run before
the text is there. Nothing sleeps for a fixed time."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import polars as pl
import pytest

from tests import dashboard_store
from tests.dashboard_server import served_dashboard
from ttscale import analysis, results, store
from ttscale.analysis import findings as analysis_findings

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
WAIT_MS = 90_000
"""How long any check waits for its condition (generous: the machine is shared)."""


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
    read_only = f"sqlite:///file:{seeded.home / 'ttscale.db'}?mode=ro&uri=true"
    log = tmp_path_factory.mktemp("dashboard-server") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSCALE_DASHBOARD")}
    env.update(seeded.env)
    with served_dashboard(env, log, db=read_only) as base:
        yield base


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1400}, accept_downloads=True)
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        yield tab
        context.close()
        browser.close()


def expect(target):
    """Playwright's `expect` (imported late: collecting this module needs no Playwright)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def open_page(tab, url: str, title: str, n_charts: int, shots: Path, name: str) -> None:
    tab.goto(url)
    expect(tab.get_by_role("heading", name=title).first).to_be_visible()
    if n_charts:
        expect(tab.locator(CHART_SVG)).to_have_count(n_charts)
    settle(tab)
    expect(tab.locator('[data-testid="stException"]')).to_have_count(0)
    shoot(tab, shots, name)


SETTLED = """() => !document.querySelector(
    '[data-testid="stStatusWidget"], [data-testid="stSkeleton"], [data-testid="stElementContainer"][data-stale="true"]'
)"""
"""No script run going (the status widget), nothing still loading (skeletons) and no element
left over from the previous run (stale)."""


def settle(tab) -> None:
    """Until Streamlit's script run is over and the page has drawn what it sent."""
    tab.wait_for_function(SETTLED)


def shoot(tab, shots: Path, name: str) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    charts = tab.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        charts.nth(i).screenshot(path=str(shots / f"{name}-chart{i}.png"))


def combobox(tab, label: str):
    return tab.get_by_role("combobox", name=label, exact=True)


def choose(tab, label: str, text: str) -> None:
    """Pick the option of a selectbox that contains `text`, as a user does: open, type, click."""
    box = combobox(tab, label)
    box.scroll_into_view_if_needed()
    box.click()
    box.fill(text)
    tab.get_by_role("option", name=re.compile(re.escape(text))).first.click()


def marks(tab, chart: int, kind: str, where: str = ""):
    """The rendered items of one mark type (`symbol`, `line`, `rule`, `rect`, `area`) in a
    chart; `where` narrows them with a CSS attribute selector (`[aria-label*="n: 4"]`)."""
    return tab.locator(CHART_SVG).nth(chart).locator(f"g.mark-{kind}.role-mark > path{where}, g.mark-{kind}.role-mark > line{where}")


def dashboard_report(seeded, cell_ids: list[str]) -> analysis.Report:
    """The report the dashboard builds (first n candidates, oracle bins, charged FLOPs)."""
    engine = store.make_engine(seeded.url)
    with engine.connect() as conn:
        report = results.report(results.load(conn, cell_ids), mode="prefix", bins="oracle", flops="charged")
    engine.dispose()
    return report


def test_dashboard_pages_render_in_chromium(page, server, seeded, stored, tmp_path):
    shots = tmp_path / "screenshots"
    sweep = stored["sweep"]
    cells = stored["cells"]

    # Findings, the page the dashboard opens on: the headline first, every finding, the flat
    # verifier flagged, and a link to the candidates behind a finding that opens the explorer
    report = dashboard_report(seeded, cells["cell_id"].to_list())
    found = analysis_findings.findings(report)
    open_page(page, f"{server}/?sweep={sweep['sweep_id']}", "Findings", 0, shots, "findings")
    expect(page.get_by_text(analysis_findings.headline(report), exact=True)).to_be_visible()
    for finding in found:  # one model and dataset, which the headline names
        expect(page.get_by_text(finding.text, exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^\d+ of \d+ cells with a verifier have a flat verifier"))).to_be_visible()
    expect(page.get_by_role("link", name="All sweeps and their cells")).to_be_visible()
    verifier = next(f for f in found if f.kind == "verifier")
    method = verifier.option.rpartition(":")[2]
    link = page.get_by_role("link", name=f"Candidates at n={verifier.n} (problem explorer)").first
    expect(link).to_have_attribute("href", re.compile(rf"problems\?sweep={sweep['sweep_id']}&cell=[0-9a-f]+&n={verifier.n}&method={method}$"))
    shoot(page, shots, "findings")
    page.get_by_role("link", name="All sweeps and their cells").scroll_into_view_if_needed()
    shoot(page, shots, "findings-end")  # Streamlit scrolls its main area itself: the full page is two shots
    link.click()
    expect(page.get_by_role("heading", name="Problem explorer")).to_be_visible()
    expect(page.get_by_role("heading", name="Selection")).to_be_visible()
    expect(combobox(page, "Highlight the candidate chosen by")).to_have_value(method)
    settle(page)
    shoot(page, shots, "findings-followed")

    # Sweeps: the sweep with its status, and its cells
    open_page(page, f"{server}/sweeps", "Sweeps", 0, shots, "sweeps")
    expect(combobox(page, "Cells of sweep")).to_have_value(f"dashboard-test · {sweep['sweep_id']}")
    expect(page.get_by_text("Cells run outside sweeps")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Store: sqlite · ttscale\.db · read-only")).first).to_be_visible()  # read-only, no path
    expect(page.locator('[data-testid="stMetricValue"]').nth(2)).to_have_text(str(cells.height + 1))

    # Frontiers: four charts; the accuracy-vs-n chart draws one dot per (option, n)
    open_page(page, f"{server}/frontiers?sweep={sweep['sweep_id']}", "Frontiers", 4, shots, "frontiers")
    expect(marks(page, 0, "symbol")).to_have_count(3 * 3 + 3 * 2)  # naive/weighted/majority: best_of_n at n=1, 2, 4; beam_search at 2, 4
    expect(marks(page, 0, "line")).to_have_count(3 * 2)  # one line per strategy × selection
    legend = page.locator(CHART_SVG).nth(0).locator("text")
    for name in ("beam_search", "best_of_n", "naive", "weighted", "majority"):
        expect(legend.filter(has_text=re.compile(rf"^\s*{name}\s*$")).first).to_be_attached()
    expect(marks(page, 0, "symbol", '[aria-label*="option: beam_search:weighted"][aria-label*="n: 4"]').first).to_be_attached()
    expect(page.get_by_text(re.compile(rf"scripted on {re.escape(seeded.dataset)}: at 4 generations, .+ is best with \d+%"))).to_be_visible()
    expect(page.get_by_text("needs at least two models")).to_be_visible()

    # Compute-optimal: the table, its intervals, and the gain heatmap (one rect per bin × budget)
    open_page(page, f"{server}/compute_optimal?sweep={sweep['sweep_id']}", "Compute-optimal strategy per difficulty", 1, shots, "compute_optimal")
    frontier = report.frontier
    per_bin = frontier.filter(pl.col("bin") != "all")
    expect(marks(page, 0, "rect")).to_have_count(per_bin.height)
    assert per_bin.height > 0
    label = f"{100 * per_bin.row(0, named=True)['optimal_accuracy']:.0f}%"  # the heatmap writes each cell's accuracy
    expect(page.locator(CHART_SVG).nth(0).locator("text").filter(has_text=re.compile(rf"^{re.escape(label)}$")).first).to_be_attached()
    expect(page.get_by_text(re.compile(r"Intervals are 95%: Wilson over the problems"))).to_be_visible()

    # Problem explorer: a beam-search cell; pick another problem, then click a node of its tree
    beam = cells.filter((pl.col("strategy") == "beam_search") & (pl.col("n") == 4)).row(0, named=True)
    problem_ids = sorted(stored["runs"].filter(pl.col("cell_id") == beam["cell_id"])["problem_id"].to_list())
    url = f"{server}/problems?sweep={sweep['sweep_id']}&cell={beam['cell_id']}&problem={problem_ids[0]}"
    open_page(page, url, "Problem explorer", 1, shots, "problems")
    gold = stored["problems"].filter(pl.col("problem_id") == problem_ids[2])["answer"][0]
    choose(page, "Problem", problem_ids[2])
    expect(page.get_by_text(f"Problem {problem_ids[2]}").first).to_be_visible()
    expect(page.get_by_text(f"Gold answer: {gold}")).to_be_visible()
    settle(page)

    engine = store.make_engine(seeded.url)
    with engine.connect() as conn:
        nodes = store.read_nodes(conn, beam["cell_id"], problem_ids[2])
    engine.dispose()
    expect(marks(page, 0, "symbol")).to_have_count(nodes.height)
    expect(marks(page, 0, "rule")).to_have_count(nodes.filter(pl.col("parent_id").is_not_null()).height)
    on_path = marks(page, 0, "symbol", '[aria-label*="state: on selected path"]')
    expect(on_path.first).to_be_attached()
    expect(marks(page, 0, "rule", '[stroke-width="3"]')).to_have_count(on_path.count() - 1)  # root → leaf of the selected candidate
    shoot(page, shots, "problems-tree")

    # click a node off the selected path: its text is shown below the tree
    target = marks(page, 0, "symbol", ':not([aria-label*="state: on selected path"])').first
    expect(target).to_be_attached()
    node_id = int(re.search(r"node_id: (\d+)", target.get_attribute("aria-label")).group(1))
    bbox = target.bounding_box()
    page.mouse.click(bbox["x"] + bbox["width"] / 2, bbox["y"] + bbox["height"] / 2)
    expect(page.get_by_text(re.compile(rf"^node {node_id} · depth"))).to_be_visible()
    settle(page)
    text = nodes.filter(pl.col("node_id") == node_id)["text"][0].strip().splitlines()[0]
    expect(page.locator('[data-testid="stCode"]').filter(has_text=text).first).to_be_visible()
    shoot(page, shots, "problems-node")

    # Audit: spec hash, verifier quality, spec, and the CSV export downloads every candidate of the sweep
    open_page(page, f"{server}/audit?sweep={sweep['sweep_id']}", "Audit", 0, shots, "audit")
    # The audit facts are a dataframe (store text shown as text): a canvas grid whose cells the
    # page keeps in a hidden accessibility table, so attached rather than visible.
    expect(page.get_by_text(sweep["spec_hash"]).first).to_be_attached()
    expect(page.get_by_text(sweep["code_version"]).first).to_be_attached()
    expect(page.get_by_text("Verifier quality", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"have a flat verifier"))).to_be_visible()
    button = page.get_by_role("button", name="Download csv")
    expect(button).to_be_enabled()
    with page.expect_download() as download:
        button.click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    candidates = pl.read_csv(io.BytesIO(archive.read("candidates.csv")))
    assert candidates.height == stored["candidates"].height
    assert json.loads(archive.read("sweep.json"))["sweep_id"] == sweep["sweep_id"]
    shoot(page, shots, "audit-downloaded")
    print(f"screenshots: {shots}")
