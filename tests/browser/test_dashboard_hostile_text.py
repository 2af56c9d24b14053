"""Store text is shown as text in the browser, never interpreted as Markdown or HTML.

A real `ttscale sweep run` (scripted policy) stores a sweep whose name, dataset path, problem
ids, problem texts and gold answers carry Markdown links, images and raw HTML aimed at a
listener on 127.0.0.1:9. A real `ttscale dashboard` then serves it to headless Chromium, which
opens every page a viewer would (findings, sweeps, frontiers, compute-optimal, the problem
explorer on the hostile problem, audit). On none of them may the hostile text become a link, an
image or an element, and the browser must never request anything from the listener's port:
a stored answer must not be able to make a viewer's browser fetch a URL."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.browser.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, expect, settle
from tests.cli import TTSCALE
from tests.dashboard_server import served_dashboard
from tests.plugins.prefect_mlflow import no_prefect_env

pytestmark = pytest.mark.browser

TRAP = "127.0.0.1:9"
ANSWER = f"5` [phish](http://{TRAP}/login) ![img](http://{TRAP}/track.png) `x"
TEXT = f'How much is 2 + 3? <img src="http://{TRAP}/html.png"> [more](http://{TRAP}/text) **bold**'
PROBLEM_ID = f"p1 [id](http://{TRAP}/id) ![i](http://{TRAP}/id.png)"
NAME = f"hostile ![n](http://{TRAP}/name.png) [n](http://{TRAP}/name) <b>x</b>"
SPEC = """\
name: '{name}'
models: [scripted]
verifiers: [scripted]
strategies: [{{name: best_of_n}}]
budgets: [2]
datasets: [{{name: jsonl, path: '{path}'}}]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile-dashboard")
    data = home / "[click](x) data.jsonl"
    rows = [{"id": PROBLEM_ID, "problem": TEXT, "answer": ANSWER}, {"id": "p2", "problem": "1 + 1?", "answer": "2"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = home / "spec.yaml"
    spec.write_text(SPEC.format(name=NAME, path=data), encoding="utf-8")
    env = no_prefect_env({k: v for k, v in os.environ.items() if not k.startswith("TTSCALE_")})
    env.update({"TTSCALE_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"})
    done = subprocess.run([TTSCALE, "sweep", "run", str(spec)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with served_dashboard(env, home / "server.log") as base:
        yield base


def _no_hostile_elements(tab) -> None:
    expect(tab.locator(f'a[href*="{TRAP}"]')).to_have_count(0)
    expect(tab.locator(f'img[src*="{TRAP}"]')).to_have_count(0)
    expect(tab.locator('[data-testid="stException"]')).to_have_count(0)


def test_hostile_store_text_is_shown_as_text_and_fetches_nothing(served, tmp_path):
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    playwright_expect.set_options(timeout=WAIT_MS)
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_context(viewport={"width": 1500, "height": 1400}).new_page()
        tab.set_default_timeout(WAIT_MS)
        tab.on("request", lambda r: requested.append(r.url))
        try:
            for page in ("", "sweeps", "frontiers", "compute_optimal", "audit"):
                tab.goto(f"{served}/{page}")
                settle(tab)
                _no_hostile_elements(tab)
            tab.goto(f"{served}/problems")
            settle(tab)
            # the explorer opens on the first problem, the hostile one: every field as written
            expect(tab.get_by_text(f"Gold answer: {ANSWER}", exact=True)).to_be_visible()
            expect(tab.get_by_text(TEXT, exact=True)).to_be_visible()
            expect(tab.get_by_text(f"Problem {PROBLEM_ID}", exact=True)).to_be_visible()
            _no_hostile_elements(tab)
            tab.screenshot(path=str(tmp_path / "problems.png"), full_page=True)
        finally:
            browser.close()
    assert not [u for u in requested if TRAP in u], [u for u in requested if TRAP in u]
