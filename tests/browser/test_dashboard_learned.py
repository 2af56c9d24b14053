"""A learned verifier on the dashboard in headless Chromium: a real `ttscale dashboard` whose
TTSCALE_HOME holds two model folders (`tests/dashboard_store.learned_store`). The sweep's audit
page shows the matching folder's metrics and data card and links to the cell it was trained
from; the audit of the cell whose folder was edited since shows the one-line refusal instead;
the findings page compares the verifiers by their short names. Every check waits for its
condition; screenshots go under the test's tmp dir."""

from __future__ import annotations

import os
import re

import pytest

from tests import dashboard_store
from tests.browser.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, expect, settle
from tests.dashboard_server import served_dashboard
from ttscale import store
from ttscale.reward_model import fingerprint

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    return dashboard_store.learned_store(tmp_path_factory.mktemp("dashboard-learned-browser"))


@pytest.fixture(scope="module")
def server(seeded, tmp_path_factory):
    """`ttscale dashboard` reading the store read-only, with the store's home as TTSCALE_HOME
    (so its model folders lie under an allowed root)."""
    read_only = f"sqlite:///file:{seeded.home / 'ttscale.db'}?mode=ro&uri=true"
    log = tmp_path_factory.mktemp("dashboard-learned-server") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSCALE_")}
    env.update(seeded.env)
    with served_dashboard(env, log, db=read_only) as base:
        yield base


def test_audit_shows_the_learned_verifiers_card_or_says_why_not(seeded, server, tmp_path):
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    playwright_expect.set_options(timeout=WAIT_MS)
    engine = store.make_engine(seeded.url)
    with engine.connect() as conn:
        sweep_id = store.read_sweeps(conn)["sweep_id"][0]
        cells = store.read_cells(conn)
    engine.dispose()
    trained_from = cells.filter(cells["verifier"] == "scripted")["cell_id"][0]
    edited = next(v for v in cells["verifier"].to_list() if "/models/edited@" in v)
    short = f"learned:loop@{seeded.learned[-12:-4]}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_context(viewport={"width": 1500, "height": 1400}).new_page()
        tab.set_default_timeout(WAIT_MS)

        tab.goto(f"{server}/audit?sweep={sweep_id}")
        expect(tab.get_by_role("heading", name="Audit").first).to_be_visible()
        expect(tab.get_by_text("Learned verifier", exact=True)).to_be_visible()
        expect(tab.get_by_text(seeded.learned, exact=True)).to_be_visible()  # the stored name, as text
        # dataframes are canvas grids with a hidden accessibility table: attached, not visible
        expect(tab.get_by_text(re.compile(r"^[0-9a-f]{12} — matches the folder")).first).to_be_attached()
        expect(tab.get_by_text("0.7062", exact=True).first).to_be_attached()  # validation step AUC
        expect(tab.get_by_text("hard positive share", exact=True).first).to_be_attached()
        expect(tab.get_by_text("feedfacefeedface", exact=True).first).to_be_attached()  # a training cell not in the store
        link = tab.get_by_role("link", name=f"Audit: the sweep of 1 training cell (cell {trained_from})")
        expect(link).to_have_attribute("href", re.compile(rf"audit\?sweep={sweep_id}&cell={trained_from}$"))
        expect(tab.locator('[data-testid="stException"]')).to_have_count(0)
        settle(tab)
        link.scroll_into_view_if_needed()  # Streamlit scrolls its main area itself: shoot the panel's end
        tab.screenshot(path=str(shots / "audit-learned.png"), full_page=True)

        tab.goto(f"{server}/audit?sweep=__unswept__")
        now = fingerprint(seeded.home / "models" / "edited")
        refusal = f"fingerprint mismatch: the folder now holds {now}, the cell ran with {edited[-12:]} (retrained or edited since)"
        expect(tab.get_by_text(refusal, exact=True)).to_be_visible()
        expect(tab.get_by_text("0.7062", exact=True)).to_have_count(0)
        settle(tab)
        tab.get_by_text(refusal, exact=True).scroll_into_view_if_needed()
        tab.screenshot(path=str(shots / "audit-refused.png"), full_page=True)

        tab.goto(f"{server}/?sweep={sweep_id}")
        expect(tab.get_by_text("Verifiers at equal budgets", exact=True)).to_be_visible()
        expect(tab.get_by_text(re.compile(rf"^{re.escape(short)} is the most accurate verifier for best_of_n:")).first).to_be_visible()
        expect(tab.get_by_text(str(seeded.home / "models"))).to_have_count(0)  # the findings never spell the path
        settle(tab)
        tab.get_by_text("Verifiers at equal budgets", exact=True).scroll_into_view_if_needed()
        tab.screenshot(path=str(shots / "findings-verifiers.png"), full_page=True)
        browser.close()
    print(f"screenshots: {shots}")
