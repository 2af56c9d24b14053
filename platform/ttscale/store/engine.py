"""Engines for the two supported stores, and the transaction helper for the edges.

- `sqlite:///PATH` (the embedded default): foreign keys on, WAL journal (readers do not block
  the writer), a 30 s busy timeout, and real BEGIN statements — pysqlite's own transaction
  handling would begin lazily and leave DDL outside transactions. `transaction()` takes the
  write lock up front (BEGIN IMMEDIATE), so two writers queue instead of failing on upgrade.
- `postgresql+psycopg://...` (the team store); a bare `postgresql://` means psycopg 3 too,
  since the bulk writer needs its COPY support.

Every failure to build or reach an engine is a one-line StoreError that names the URL with
its password replaced by `***`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ttscale.errors import StoreError

SUPPORTED = ("sqlite", "postgresql+psycopg")
_SQLITE_BEGIN = "ttscale_sqlite_begin"  # execution option read by the "begin" hook
_PASSWORD_RE = re.compile(r"(://[^:/?#@]*):.*@")  # greedy: up to the last '@'


def redact_url(url: str | URL) -> str:
    """The URL with its password replaced by `***`, even when the URL does not parse."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # malformed: fall back to a pattern that over- rather than under-redacts
        return _PASSWORD_RE.sub(r"\1:***@", url)


def one_line(err: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's '(Background on this error...)'."""
    inner = getattr(err, "orig", None) or err
    text = str(inner).strip().splitlines()
    return text[0].strip() if text else type(inner).__name__


def _scrub(message: str, url: URL | None) -> str:
    if url is not None and url.password:
        message = message.replace(str(url.password), "***")
    return message


def parse_url(url: str) -> URL:
    """Parse and normalise a store URL or raise StoreError (password redacted)."""
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError) as err:
        raise StoreError(f"store URL {redact_url(url)!r} is malformed: {_scrub(one_line(err), None)}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite+pysqlite":
        parsed = parsed.set(drivername="sqlite")
    if parsed.drivername not in SUPPORTED:
        raise StoreError(
            f"store URL {redact_url(parsed)!r}: unsupported scheme {parsed.drivername!r}; "
            "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB"
        )
    if parsed.drivername == "postgresql+psycopg" and not parsed.host and "host" not in parsed.query:
        raise StoreError(f"store URL {redact_url(parsed)!r} is malformed: no host")
    return parsed


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for in-memory or `file:` URI databases."""
    db = url.database
    if url.drivername != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def make_engine(url: str, *, create_dirs: bool = False, **engine_kwargs: object) -> Engine:
    """An Engine for `url` (no connection is made yet).

    `create_dirs`: for a SQLite file, create its parent directory (what `ttscale db upgrade`
    does; readers leave it False so a wrong path fails instead of creating an empty store).
    """
    parsed = parse_url(url)
    if parsed.drivername == "sqlite":
        path = sqlite_path(parsed)
        if path is not None and create_dirs:
            path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        args = dict(engine_kwargs.pop("connect_args", None) or {})
        # Fail fast on a black-holed host instead of hanging for minutes.
        if "connect_timeout" not in parsed.query:
            args.setdefault("connect_timeout", 10)
        engine_kwargs["connect_args"] = args
    try:
        engine = sa.create_engine(parsed, **engine_kwargs)
    except (ArgumentError, NoSuchModuleError, ValueError, TypeError) as err:
        raise StoreError(f"store URL {redact_url(parsed)!r}: {_scrub(one_line(err), parsed)}") from None
    if parsed.drivername == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001 (DBAPI objects)
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (hook below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: a crash loses no committed data
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(_SQLITE_BEGIN) == "IMMEDIATE" else ""
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction: committed when the block ends, rolled back if
    it raises. For the edges (CLI, runner, flows); store functions never commit."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        with conn.begin():
            yield conn


def connect(engine: Engine) -> Connection:
    """Open a connection or raise a one-line StoreError naming the (redacted) URL."""
    path = sqlite_path(engine.url)
    if path is not None and not path.expanduser().parent.is_dir():
        raise StoreError(f"store {redact_url(engine.url)}: no directory {path.parent}; `ttscale db upgrade` creates the store")
    try:
        return engine.connect()
    except SQLAlchemyError as err:
        raise StoreError(f"cannot connect to store {redact_url(engine.url)}: {_scrub(one_line(err), engine.url)}") from None


def check_reachable_and_migrated(engine: Engine) -> str:
    """Return the store's schema revision, or raise StoreError if the store cannot be reached
    or is not at the migrations' head (with the command that fixes it)."""
    from ttscale.store.migrate import current_revision, head_revision

    with connect(engine) as conn:
        try:
            current = current_revision(conn)
        except SQLAlchemyError as err:
            raise StoreError(f"store {redact_url(engine.url)}: {_scrub(one_line(err), engine.url)}") from None
    head = head_revision()
    if current != head:
        raise StoreError(
            f"store {redact_url(engine.url)} is at schema revision {current or 'none'}, "
            f"code expects {head}: run `ttscale db upgrade`"
        )
    return current
