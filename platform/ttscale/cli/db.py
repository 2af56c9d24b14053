"""`ttscale db upgrade | downgrade | current | check`: the results store's schema.

The store is `--db URL`, else $TTSCALE_DATABASE_URL, else the SQLite file under $TTSCALE_HOME.
URLs are printed with their secrets replaced by `***`.
"""

from __future__ import annotations

from typing import Optional

import typer

from ttscale.store import Engine
from ttscale import store
from ttscale.cli.context import DB_HELP, settings_for
from ttscale.errors import SpecError, StoreError
from ttscale.redaction import redact_url
from ttscale.store.migrate import current_revision


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="Create, upgrade and check the results store's schema.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def upgrade(
        revision: str = typer.Argument("head", help="Target revision"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Create the schema, or upgrade it to REVISION (default: the latest)."""
        engine = store.make_engine(settings_for(db).database_url, create_dirs=True)
        store.upgrade(engine, revision)
        typer.echo(f"{redact_url(engine.url)}: at revision {_current(engine)}")

    @db_app.command("downgrade")
    def downgrade(
        revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base (base drops every table)"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        yes: bool = typer.Option(False, "--yes", help="Confirm: a downgrade deletes the data of dropped tables"),
    ) -> None:
        """Downgrade the schema to REVISION."""
        if not yes:
            raise SpecError("downgrade: deletes stored results; pass --yes to confirm")
        engine = store.make_engine(settings_for(db).database_url)
        store.downgrade(engine, revision)
        typer.echo(f"{redact_url(engine.url)}: at revision {_current(engine) or 'none'}")

    @db_app.command("current")
    def current(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Print the store's schema revision (`none` for an empty database)."""
        engine = store.make_engine(settings_for(db).database_url)
        typer.echo(f"{redact_url(engine.url)}: at revision {_current(engine) or 'none'} (code expects {store.head_revision()})")

    @db_app.command("check")
    def check(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Exit 0 if the store is reachable, at the latest revision and matches the models."""
        engine = store.make_engine(settings_for(db).database_url)
        revision = store.check_reachable_and_migrated(engine)
        with store.connect(engine) as conn:
            drift = store.schema_drift(conn)
        if drift:
            raise StoreError(f"store {redact_url(engine.url)} differs from the models: {drift[0]!r} (+{len(drift) - 1} more)")
        typer.echo(f"{redact_url(engine.url)}: ok, at revision {revision}")


def _current(engine: Engine) -> str | None:
    with store.connect(engine) as conn:
        return current_revision(conn)
