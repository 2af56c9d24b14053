"""The two other ways a PostgreSQL URL carries a password never leak it either.

`test_secrets_not_leaked.py` covers `user:PASSWORD@host`. Here, on a real PostgreSQL role that
needs its password, the same password goes (1) in the query, `user@host/db?password=SECRET`, as
libpq and psycopg accept, and (2) unencoded in the userinfo with `@` in it, `user:p@ss@SECRET@host`
(SQLAlchemy alone would take `ss@SECRET@host` for the host and print it in every error). Through
the real entry point: `db upgrade`, `db check`, a wrong password (the one-line error, retried),
`ttscale -v sweep run` with MLflow tracking (its `ttscale.store_url` tag), the dashboard's start
line and the sidebar every dashboard page shows. No fragment of the password may appear."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.cli import TTSCALE
from tests.dashboard_server import wait_until_healthy
from tests.plugins.prefect_mlflow import free_port, no_prefect_env, stop_process

pytestmark = [pytest.mark.postgres]

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
SECRET = "S3CR3T-tail"
AT_PASSWORD = f"p@ss@{SECRET}"
SPEC = """\
name: url-forms
models: [scripted]
verifiers: [scripted]
strategies: [{{name: best_of_n}}]
budgets: [2]
datasets: [{{name: jsonl, path: '{path}'}}]
"""


def _fragments(password: str) -> list[str]:
    # The whole password and what a split at an `@` would leave visible.
    return sorted({password, *[p for p in password.split("@") if len(p) > 3], SECRET})


def _run(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([TTSCALE, *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == expect, f"ttscale {' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def _dashboard_start(env: dict[str, str], home: Path) -> str:
    log = home / "dashboard.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([TTSCALE, "dashboard", "--port", str(port)], env=env, cwd=str(home),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc, log, timeout_s=180)
    finally:
        stop_process(proc)
    return log.read_text()


def _sidebar(monkeypatch, url: str) -> list[str]:
    monkeypatch.setenv("TTSCALE_DASHBOARD_DATABASE_URL", url)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    return [str(c.value) for c in at.sidebar.caption]


@pytest.mark.parametrize("form", ["query", "unencoded_at"])
def test_password_in_the_query_or_with_an_unencoded_at_never_shows(form, role_with_password, tmp_path, monkeypatch):
    password = SECRET if form == "query" else AT_PASSWORD
    with role_with_password(password) as role:
        base = f"postgresql+psycopg://{role.name}"
        hostport = f"{role.host}:{role.port}"
        if form == "query":
            url = f"{base}@{hostport}/{role.name}_store?password={password}"
            wrong = f"{base}@{hostport}/{role.name}_store?password=wrong-{password}"
        else:
            url = f"{base}:{password}@{hostport}/{role.name}_store"
            wrong = f"{base}:wrong-{password}@{hostport}/{role.name}_store"
        home = tmp_path / "home"
        home.mkdir()
        env = no_prefect_env({**os.environ})
        env.update({"TTSCALE_HOME": str(home), "TTSCALE_DATABASE_URL": url, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                    "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})  # fmt: skip
        env.pop("TTSCALE_DASHBOARD_DATABASE_URL", None)
        rows = home / "problems.jsonl"
        rows.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"{i} + 2?", "answer": str(i + 2)}) + "\n" for i in range(2)))
        spec = home / "spec.yaml"
        spec.write_text(SPEC.format(path=rows))

        outputs = [_run(env, "db", "upgrade"), _run(env, "db", "check")]
        failed = _run({**env, "TTSCALE_DATABASE_URL": wrong}, "db", "check", expect=1)
        assert failed.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in failed.stderr
        assert "password authentication failed" in failed.stderr, failed.stderr
        outputs += [failed, _run(env, "-v", "sweep", "run", str(spec))]
        assert "tracking: complete" in outputs[-1].stdout

        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
        tags = [json.dumps(r.data.tags) + json.dumps(r.data.params) for e in client.search_experiments()
                for r in client.search_runs([e.experiment_id])]  # fmt: skip
        assert any("ttscale.store_url" in t for t in tags)
        start = _dashboard_start(env, home)
        assert f"{role.name}" in start and "***" in start, start
        sidebar = _sidebar(monkeypatch, url)
        assert sidebar and all(c.startswith("Store: postgresql · ") for c in sidebar if c.startswith("Store:")), sidebar

        shown = [o.stdout + o.stderr for o in outputs] + tags + [start, *sidebar]
        for fragment in _fragments(password):
            for text in shown:
                assert fragment not in text, f"{fragment!r} shown:\n{text[-2000:]}"
