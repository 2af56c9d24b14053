"""`ttscale db upgrade | downgrade | current | check`: the results store's schema.

The store is `--db URL`, else $TTSCALE_DATABASE_URL, else the SQLite file under $TTSCALE_HOME.
URLs are printed with the password replaced by `***`.
"""

from __future__ import annotations

from typing import Optional

import typer

DB_HELP = "Store URL (default: $TTSCALE_DATABASE_URL or the SQLite file under $TTSCALE_HOME)"


def store_url(db: str | None) -> str:
    """The store URL a command uses: `--db`, else the environment's setting."""
    from ttscale.settings import Settings

    return db or Settings.from_env().database_url


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="Create, upgrade and check the results store's schema.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def upgrade(
        revision: str = typer.Argument("head", help="Target revision"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Create the schema, or upgrade it to REVISION (default: the latest)."""
        from ttscale import store

        engine = store.make_engine(store_url(db), create_dirs=True)
        store.upgrade(engine, revision)
        typer.echo(f"{store.redact_url(engine.url)}: at revision {_current(engine)}")

    @db_app.command("downgrade")
    def downgrade(
        revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base (base drops every table)"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        yes: bool = typer.Option(False, "--yes", help="Confirm: a downgrade deletes the data of dropped tables"),
    ) -> None:
        """Downgrade the schema to REVISION."""
        from ttscale import store
        from ttscale.errors import SpecError

        if not yes:
            raise SpecError("downgrade: deletes stored results; pass --yes to confirm")
        engine = store.make_engine(store_url(db))
        store.downgrade(engine, revision)
        typer.echo(f"{store.redact_url(engine.url)}: at revision {_current(engine) or 'none'}")

    @db_app.command("current")
    def current(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Print the store's schema revision (`none` for an empty database)."""
        from ttscale import store

        engine = store.make_engine(store_url(db))
        typer.echo(f"{store.redact_url(engine.url)}: at revision {_current(engine) or 'none'} (code expects {store.head_revision()})")

    @db_app.command("check")
    def check(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Exit 0 if the store is reachable, at the latest revision and matches the models."""
        from ttscale import store
        from ttscale.errors import StoreError

        engine = store.make_engine(store_url(db))
        revision = store.check_reachable_and_migrated(engine)
        with store.connect(engine) as conn:
            drift = store.schema_drift(conn)
        if drift:
            raise StoreError(f"store {store.redact_url(engine.url)} differs from the models: {drift[0]!r} (+{len(drift) - 1} more)")
        typer.echo(f"{store.redact_url(engine.url)}: ok, at revision {revision}")


def _current(engine) -> str | None:  # noqa: ANN001
    from ttscale.store import connect
    from ttscale.store.migrate import current_revision

    with connect(engine) as conn:
        return current_revision(conn)
