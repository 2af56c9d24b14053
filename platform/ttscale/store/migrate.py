"""Alembic, called from the package: upgrade, downgrade, current revision, drift check.

The migration scripts live in `<repo>/migrations` (beside `platform/`), found from this
package's location, so they work from an editable install or a checkout without an
alembic.ini. The engine's connection is handed to migrations/env.py through
`Config.attributes`, never through the ini file (a URL-encoded password's `%` would be
taken for interpolation there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ttscale.errors import StoreError
from ttscale.store.engine import connect, is_transient, one_line, redact_url, scrubbed, store_error
from ttscale.store.provenance import repo_root
from ttscale.store.schema import metadata


def migrations_dir() -> Path:
    return repo_root() / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have {len(heads)} heads: merge them"
    return heads[0]


def current_revision(conn: Connection) -> str | None:
    """The revision stamped in the store, None for an empty database."""
    return MigrationContext.configure(conn).get_current_revision()


def _foreign_keys(conn: Connection, state: str) -> None:
    # On the DBAPI connection: SQLAlchemy's own execute would open the transaction first.
    conn.connection.dbapi_connection.execute(f"PRAGMA foreign_keys = {state}")


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in the one transaction a migration runs in.

    On SQLite, batch mode rebuilds a table by copy-drop-rename; with foreign keys on, dropping
    `cells` would cascade-delete every row that references it. The pragma is a no-op inside a
    transaction, so it is turned off before BEGIN, and the references are checked before COMMIT."""
    sqlite = engine.dialect.name == "sqlite"
    with connect(engine) as conn:
        if sqlite:
            _foreign_keys(conn, "OFF")
        try:
            with conn.begin():
                yield conn
                if sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
                    raise StoreError(f"migration of store {redact_url(engine.url)} would break {len(broken)} references; rolled back")
        finally:
            if sqlite:
                _foreign_keys(conn, "ON")


def _run(engine: Engine, action: str, revision: str) -> None:
    fn = command.upgrade if action == "upgrade" else command.downgrade
    try:
        with migrating(engine) as conn:
            fn(alembic_config(conn), revision)
    except SQLAlchemyError as err:
        raise StoreError(f"{action} of store {redact_url(engine.url)} to {revision} failed: {one_line(err)}") from None
    except CommandError as err:  # e.g. an unknown revision
        raise StoreError(f"{action} of store {redact_url(engine.url)}: {one_line(err)}") from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision`, in one transaction."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade to `revision` (`base` drops every table: data is lost)."""
    _run(engine, "downgrade", revision)


def schema_drift(conn: Connection) -> list:
    """Differences between the ORM models and the database's actual schema, as Alembic's
    autogenerate sees them (empty when migrations and models agree)."""
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
    return [d for d in compare_metadata(ctx, metadata) if not _is_alembic_table(d)]


def _is_alembic_table(diff: object) -> bool:
    return isinstance(diff, tuple) and len(diff) > 1 and getattr(diff[1], "name", None) == "alembic_version"


def check_reachable_and_migrated(engine: Engine) -> str:
    """Return the store's schema revision, or raise StoreError if the store cannot be reached
    or is not at the migrations' head (with the command that fixes it)."""
    with connect(engine) as conn:
        try:
            current = current_revision(conn)
        except SQLAlchemyError as err:
            raise store_error(f"store {redact_url(engine.url)}: {scrubbed(err, engine.url)}", is_transient(err)) from None
    head = head_revision()
    if current != head:
        raise StoreError(
            f"store {redact_url(engine.url)} is at schema revision {current or 'none'}, "
            f"code expects {head}: run `ttscale db upgrade`"
        )
    return current
