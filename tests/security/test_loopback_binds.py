"""Servers bind the loopback interface unless configured otherwise.

- `ttscale dashboard` (Streamlit) listens on 127.0.0.1 by default; `--host` changes it.
- Prefect's temporary server (local mode, `ttscale sweep run`) is started by Prefect on
  127.0.0.1; test_secrets_not_leaked.py samples the sockets while a sweep runs.
- ttscale starts no MLflow server (tracking goes straight to the tracking store); a static
  check below keeps it so, and keeps every host default that ttscale itself sets on loopback."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.cli import TTSCALE, ttscale
from tests.dashboard_server import wait_until_healthy
from tests.plugins.prefect_mlflow import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('loopback') / 'ttscale.db'}"
    assert ttscale("db", "upgrade", "--db", url).returncode == 0
    return url


def listening_addresses(args: list[str], port: int, tmp_path: Path) -> set[str]:
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([TTSCALE, *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
        wait_until_healthy(f"http://{host}:{port}", proc, log, timeout_s=180)
        root = psutil.Process(proc.pid)
        return {
            c.laddr.ip
            for p in [root, *root.children(recursive=True)]
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
    finally:
        stop_process(proc)


def test_dashboard_binds_loopback_by_default(store_url, tmp_path):
    port = free_port()
    assert listening_addresses(["dashboard", "--port", str(port), "--db", store_url], port, tmp_path) == {"127.0.0.1"}


def test_dashboard_binds_the_address_asked_for(store_url, tmp_path):
    port = free_port()
    assert listening_addresses(["dashboard", "--port", str(port), "--db", store_url, "--host", "127.0.0.2"], port, tmp_path) == {"127.0.0.2"}


def test_servers_started_by_ttscale_default_to_loopback():
    sources = {p: p.read_text(encoding="utf-8") for d in ("platform", "flows", "dashboard") for p in (ROOT / d).rglob("*.py")}
    # No MLflow server (or UI) is started by ttscale.
    for path, text in sources.items():
        assert not re.search(r"[\"']mlflow[\"']\s*,\s*[\"'](server|ui)[\"']|mlflow\.server", text), path
        wildcard = [n.lineno for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant) and n.value in ("0.0.0.0", "::")]
        assert not wildcard, f"{path}:{wildcard}: a wildcard bind address"
    # The dashboard's --host option defaults to 127.0.0.1.
    tree = ast.parse(sources[ROOT / "platform" / "ttscale" / "cli" / "dashboard.py"])
    defaults = [
        n.args[0].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "Option" and len(n.args) >= 2
        and isinstance(n.args[1], ast.Constant) and n.args[1].value == "--host"
    ]
    assert defaults == ["127.0.0.1"]
    # Prefect's temporary server: hard-wired to 127.0.0.1 by Prefect itself (the version pinned here).
    import prefect.server.api.server as prefect_server

    source = Path(prefect_server.__file__).read_text(encoding="utf-8")
    assert re.search(r'"--host",\s*"127\.0\.0\.1"', source)
