"""The dashboard under load: a big sweep open in 5 browser tabs at once (findings, sweeps,
frontiers, compute-optimal, problem explorer) while two writer processes keep storing shards into the
same PostgreSQL store. Every tab must draw its page, twice (cold, then after a reload), and
the server's health endpoint must keep answering.

The store is seeded like benchmarks/dashboard_load.py (synthetic candidates bulk-loaded):
8 cells × 100 problems × 256 candidates = 204,800 candidates by default, 1,024,000 with
TTSCALE_LOAD_FULL=1. The dashboard reads through the read-only role, as on a team install.
`TTSCALE_LOAD_RECORD=1` appends the figures to benchmarks/RESULTS.md."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing as mp
import os
import platform
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from ttscale import store
from tests.cli import TTSCALE
from tests.load import benchmark, full_size
from tests.plugins.prefect_mlflow import free_port, stop_process

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
TABS = ("findings", "sweeps", "frontiers", "compute_optimal", "problems")
COLD_LIMIT_S = 900 if full_size() else 420
"""Generous: 5 cold pages at once on a shared 2-core machine while two writers run."""
WARM_LIMIT_S = 120


@pytest.fixture
def big_store(fresh_postgres_db, monkeypatch):
    dl = benchmark("dashboard_load")
    size = "full" if full_size() else "load"
    if size == "load":
        monkeypatch.setitem(dl.SIZES, "load", {"n_problems": 100, "n": 256})
    t0 = time.perf_counter()
    ids = dl.build_store(fresh_postgres_db, size)
    ids["seed_s"] = round(time.perf_counter() - t0, 1)
    ids["size"] = size
    engine = store.make_engine(fresh_postgres_db)
    role = f"dash_{uuid.uuid4().hex[:8]}"
    store.create_reader_role(engine, role, "load-test")
    reader = sa.make_url(fresh_postgres_db).set(username=role, password="load-test").render_as_string(hide_password=False)
    try:
        yield fresh_postgres_db, reader, ids
    finally:
        with store.transaction(engine) as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
        with engine.connect() as conn:  # the role's sessions are gone with the server; drop it
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
            conn.commit()
        engine.dispose()


def start_writers(url: str, n: int = 2):
    """A second sweep storing shards (20 problems × 100 nodes each) until stopped."""
    cw = benchmark("concurrent_writers")
    plan = cw.plan_for(n_writers=n, n_nodes=1, n_cells=n)
    cell_ids = cw.register(url, plan)
    ctx = mp.get_context("spawn")
    stop, written = ctx.Event(), ctx.Value("q", 0)
    procs = [ctx.Process(target=cw.write_until_stopped, args=(url, cell_ids[w], w + 1, stop, written), name=f"writer-{w}") for w in range(n)]
    for p in procs:
        p.start()
    return procs, stop, written


def start_dashboard(reader_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSCALE_DASHBOARD")}
    with log.open("wb") as out:
        proc = subprocess.Popen([TTSCALE, "dashboard", "--port", str(port), "--db", reader_url], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while not health_ok(base):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)
    return proc, base


def health_ok(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=10) as r:
            return r.read().strip() == b"ok"
    except OSError:
        return False


async def drawn(tab, page: str, limit_s: float) -> None:
    dl = benchmark("dashboard_load")
    _, title, n_charts, (kind, name) = dl.BROWSER_PAGES[page]
    timeout = limit_s * 1000
    await tab.get_by_role("heading", name=title).first.wait_for(timeout=timeout)
    await (tab.get_by_text(name) if kind == "text" else tab.get_by_role(kind, name=name)).first.wait_for(timeout=timeout)
    if n_charts:
        await tab.locator('[data-testid="stVegaLiteChart"] svg').nth(n_charts - 1).wait_for(timeout=timeout)
    await tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    assert await tab.locator('[data-testid="stException"]').count() == 0, f"{page}: the page shows an exception"


async def visit_all(base: str, ids: dict, health: list) -> dict[str, dict[str, float]]:
    from playwright.async_api import async_playwright

    dl = benchmark("dashboard_load")
    query = urlencode({"sweep": ids["sweep_id"], "cell": ids["beam_cell"], "problem": ids["problem_id"]})
    times: dict[str, dict[str, float]] = {page: {} for page in TABS}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=dl.CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1500, "height": 1400})
        tabs = {page: await context.new_page() for page in TABS}

        async def load(page: str, how: str, limit_s: float) -> None:
            t0 = time.perf_counter()
            if how == "cold":
                await tabs[page].goto(f"{base}/{dl.BROWSER_PAGES[page][0]}?{query}", timeout=limit_s * 1000)
            else:
                await tabs[page].reload(timeout=limit_s * 1000)
            await drawn(tabs[page], page, limit_s)
            times[page][how] = time.perf_counter() - t0

        async def probe() -> None:  # the server keeps answering while the tabs load
            while True:
                t0 = time.perf_counter()
                ok = await asyncio.to_thread(health_ok, base)
                health.append((ok, time.perf_counter() - t0))
                await asyncio.sleep(2)

        prober = asyncio.create_task(probe())
        try:
            await asyncio.gather(*(load(page, "cold", COLD_LIMIT_S) for page in TABS))
            await asyncio.gather(*(load(page, "reload", WARM_LIMIT_S) for page in TABS))
        finally:
            prober.cancel()
            await browser.close()
    return times


def test_every_tab_on_a_big_sweep_while_a_sweep_writes(big_store, tmp_path):
    url, reader, ids = big_store
    procs, stop, written = start_writers(url)
    server = None
    try:
        time.sleep(2)
        server, base = start_dashboard(reader, tmp_path / "dashboard.log")
        start_written = written.value
        health: list[tuple[bool, float]] = []
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        times = asyncio.run(visit_all(base, ids, health))
        wall = time.perf_counter() - t0
        during = written.value - start_written
        assert all(p.is_alive() for p in procs), "a writer died"
        assert health_ok(base)
    finally:
        stop.set()
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
        if server is not None:
            stop_process(server)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    assert during > 0, "the writers stored nothing while the tabs loaded"
    assert health and all(ok for ok, _ in health), health
    summary = {
        "candidates": ids["n_candidates"], "seed_s": ids["seed_s"], "wall_s": round(wall, 1), "problems_written_meanwhile": during,
        "health_checks": len(health), "health_max_s": round(max(t for _, t in health), 2),
        "tabs": {page: {k: round(v, 1) for k, v in t.items()} for page, t in times.items()},
    }  # fmt: skip
    print(summary)
    if os.environ.get("TTSCALE_LOAD_RECORD"):
        record(summary, load_before, url)


def record(summary: dict, load_before, url: str) -> None:
    cw = benchmark("concurrent_writers")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        server = conn.exec_driver_sql("SHOW server_version").scalar_one()
    engine.dispose()
    size = "full" if full_size() else "default"
    rows = "\n".join(f"| {page} | {t['cold']:.1f} | {t['reload']:.1f} |" for page, t in summary["tabs"].items())
    text = f"""
## dashboard_under_load ({size}, PostgreSQL) — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC

- command: `{"TTSCALE_LOAD_FULL=1 " if full_size() else ""}TTSCALE_LOAD_RECORD=1 pytest -m slow tests/load/test_dashboard_under_load.py -s`
- machine: {cw.machine(load_before)}; load avg {", ".join(f"{x:.1f}" for x in os.getloadavg())} at the end
- git: {cw.git_sha()}; Python {platform.python_version()}; PostgreSQL {server} (the test session's server: fsync off)
- data: {summary["candidates"]:,} candidates (dashboard_load's synthetic sweep: 8 cells × {summary["candidates"] // 2048:,} problems × 256 candidates), bulk-loaded in {summary["seed_s"]} s; the dashboard reads through the read-only role
- load: {len(TABS)} tabs opened at once in one headless Chromium, then reloaded at once, while 2 writer processes stored {summary["problems_written_meanwhile"]:,} problems (× 100 nodes, 4 candidates) through `store.write_shard`
- server health (`/_stcore/health` every 2 s): {summary["health_checks"]} checks, all ok, slowest {summary["health_max_s"]} s; wall time of both rounds {summary["wall_s"]} s

| tab | cold, 4 at once (s) | reload, 4 at once (s) |
|---|---|---|
{rows}
"""
    with cw.RESULTS.open("a", encoding="utf-8") as f:
        f.write(text)
