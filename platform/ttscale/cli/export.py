"""`ttscale export SWEEP --format parquet|csv|jsonl --out DIR`: one sweep's results as files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ttscale import store
from ttscale.cli.context import DB_HELP, settings_for
from ttscale.errors import SpecError
from ttscale.store.export import resolve_sweep


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        sweep: str = typer.Argument(..., help="Sweep id (16 hex) or exact sweep name"),
        fmt: str = typer.Option("parquet", "--format", help="parquet | csv | jsonl"),
        out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: ./exports/SWEEP_ID)"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Write a sweep's cells, problems, candidates, nodes and verdicts, plus sweep.json."""
        if fmt not in store.FORMATS:
            raise SpecError(f"--format: must be one of {', '.join(store.FORMATS)}, got {fmt!r}")
        with store.opened(settings_for(db).database_url, create_embedded=False) as engine, store.connect(engine) as conn:
            sweep_id = resolve_sweep(conn, sweep)
            # The default directory is named by the validated hex id, never by the sweep's name.
            paths = store.export_sweep(conn, sweep_id, out or Path("exports") / sweep_id, fmt)
        for path in paths:
            typer.echo(str(path))
