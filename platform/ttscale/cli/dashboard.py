"""`ttscale dashboard [--port 8501] [--host 127.0.0.1] [--db URL]`: serve the Streamlit dashboard.

Runs `streamlit run dashboard/app.py` headless, without usage statistics, bound to the
loopback interface unless told otherwise. The dashboard reads the store through `--db`, else
$TTSCALE_DASHBOARD_DATABASE_URL (a read-only role on a team install), else the store URL.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ttscale import store
from ttscale.cli.context import settings_for
from ttscale.errors import DataError
from ttscale.redaction import redact_url
from ttscale.store.engine import parse_url, sqlite_path
from ttscale.store.provenance import repo_root


def app_path() -> Path:
    """`<checkout>/dashboard/app.py` (the dashboard lives beside the package, not inside it)."""
    return repo_root() / "dashboard" / "app.py"


def streamlit_command(python: str, app: str, host: str, port: int) -> list[str]:
    return [
        python, "-m", "streamlit", "run", app,
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        port: int = typer.Option(8501, "--port", min=1, max=65535, help="TCP port to serve on"),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes it to the network)"),
        db: Optional[str] = typer.Option(
            None, "--db", help="Store URL to read (default: $TTSCALE_DASHBOARD_DATABASE_URL, else the store URL)"
        ),
    ) -> None:
        """Serve the dashboard: sweeps, frontiers, compute-optimal table, problem explorer, audit."""
        path = app_path()
        if not path.is_file():
            raise DataError(f"dashboard: {path} not found; `ttscale dashboard` runs from a checkout of the repository")
        url = settings_for(db).dashboard_database_url
        file = sqlite_path(parse_url(url))
        if file is not None and not file.expanduser().is_file():  # connecting would create an empty file
            raise DataError(f"--db: no SQLite store at {file}; run `ttscale db upgrade` or a sweep first")
        with store.opened(url, create_embedded=False):  # reachable and migrated, or one line now
            pass
        # The Streamlit server is another process: the store URL reaches it as its setting.
        env = {**os.environ, "TTSCALE_DASHBOARD_DATABASE_URL": url, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        typer.echo(f"ttscale dashboard on http://{host}:{port} reading {redact_url(url)}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, streamlit_command(sys.executable, str(path), host, port), env)
