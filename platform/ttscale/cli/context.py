"""What every command starts from: the settings (with `--db`), a console and its tables, who
is asking, and Prefect's environment.

Prefect reads its configuration from the environment when it is first imported, so
`configure_prefect` sets Prefect's own variables (never ttscale's settings, which travel as a
`Settings` object) before any command imports `flows`.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Collection, Sequence
from pathlib import Path

from rich.console import Console

from ttscale.analysis.text_tables import fitted_tables
from ttscale.cli import terminal
from ttscale.settings import Settings

DB_HELP = "Store URL (default: $TTSCALE_DATABASE_URL or the SQLite file under $TTSCALE_HOME)"


def settings_for(db: str | None = None) -> Settings:
    """The environment's settings, with the store URL of `--db` when given."""
    settings = Settings.from_env()
    return settings.with_database(db) if db else settings


def console(*, stderr: bool = False) -> Console:
    """A console on the terminal (`terminal.stdout`, even once the command's other output goes
    to its log file) as wide as it is, 80 columns of plain text when piped (tables split to
    fit: `analysis.text_tables`); markup in data is never interpreted (callers escape what
    they interpolate)."""
    stream = terminal.stderr() if stderr else terminal.stdout()
    return Console(file=stream, width=terminal.width_of(stream), highlight=False, soft_wrap=False)


def print_table(
    out: Console, title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], *, keys: int = 1, right: Collection[str] = ()
) -> None:
    """A table on `out`, split into parts that repeat the first `keys` columns when it is wider
    than `out` (`analysis.text_tables`); cells are plain text, never markup."""
    cells = [[str(c) for c in row] for row in rows]
    for table in fitted_tables(title, headers, cells, width=out.width, keys=keys, right=right):
        out.print(table)


def created_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def prefect_env(home: Path) -> dict[str, str]:
    """Prefect's own variables for a Prefect whose state lives under `home` (else it writes
    ~/.prefect), quiet about telemetry, and sending ttscale's log lines to the run logs."""
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
        "PREFECT_MEMO_STORE_PATH": str(home / "memo_store.toml"),
        "PREFECT_LOGGING_SETTINGS_PATH": str(home / "logging.yml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The temporary server's first start creates its database: slow on a busy 2-core box.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",  # Prefect's client-side usage analytics (sent from interactive terminals)
        # ttscale lines logged outside a flow run (before or after it) stay on the terminal only.
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "ttscale",
    }


def configure_prefect(settings: Settings) -> dict[str, str]:
    """`prefect_env` under $TTSCALE_HOME/prefect, applied to this process's environment. Must
    run before `prefect` is imported; variables the user set win (ttscale is added to the
    extra loggers the user named). Returns the variables set."""
    home = settings.home / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    applied = {}
    for key, value in prefect_env(home).items():
        if key == "PREFECT_LOGGING_EXTRA_LOGGERS":
            named = [x for x in os.environ.get(key, "").split(",") if x.strip()]
            if "ttscale" in named:
                continue
            value = ",".join([*named, "ttscale"])
        elif os.environ.get(key):
            continue
        os.environ[key] = applied[key] = value
    return applied
