"""Engines for the two supported stores, and the transaction helper for the edges.

- `sqlite:///PATH` (the embedded default): foreign keys on, WAL journal (readers do not block
  the writer), a 30 s busy timeout, and real BEGIN statements — pysqlite's own transaction
  handling would begin lazily and leave DDL outside transactions. `transaction()` takes the
  write lock up front (BEGIN IMMEDIATE), so two writers queue instead of failing on upgrade.
- `postgresql+psycopg://...` (the team store); a bare `postgresql://` means psycopg 3 too,
  since the bulk writer needs its COPY support.

Every failure to build or reach an engine is a one-line StoreError that names the URL with
its password replaced by `***`; so is a write the SQLite file refuses (disk full, read-only,
I/O error), naming the file.

Outages (docs/reliability.md): PostgreSQL connections are pinged when taken from the pool,
and `retrying` / `run_transaction` repeat a whole unit of work — connect, transaction,
commit — with exponential backoff when the server drops out (restart, failover, network
blip), invalidating the broken connection first. Everything ttscale writes is idempotent on
natural keys, so repeating a transaction whose commit may or may not have landed is safe.
The schedule is `RetryPolicy`, set per store by URL query parameters (`retry_attempts`,
`retry_delay_s`, `retry_max_delay_s`) that never reach the driver. SQLite errors are never
retried: a full disk or a read-only file does not heal by waiting.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ttscale.errors import StoreError
from ttscale.redaction import SECRET_QUERY_KEYS, redact_url, redact_urls

logger = logging.getLogger(__name__)
T = TypeVar("T")

SUPPORTED = ("sqlite", "postgresql+psycopg")
_SQLITE_BEGIN = "ttscale_sqlite_begin"  # execution option read by the "begin" hook


def one_line(err: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's '(Background on this error...)'."""
    inner = getattr(err, "orig", None) or err
    text = str(inner).strip().splitlines()
    return text[0].strip() if text else type(inner).__name__


def _secrets(url: URL | None) -> list[str]:
    if url is None:
        return []
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        if key.lower() in SECRET_QUERY_KEYS:
            values += [value] if isinstance(value, str) else list(value)
    return [str(v) for v in values if v]


def _scrub(message: str, url: URL | None) -> str:
    """A driver's message with the URL's secrets (and any URL's password in it) masked."""
    for secret in _secrets(url):
        message = message.replace(secret, "***")
    return redact_urls(message)


def scrubbed(err: BaseException, url: URL | None) -> str:
    """`one_line(err)` with `url`'s secrets masked."""
    return _scrub(one_line(err), url)


def _encode_userinfo_at(url: str) -> str:
    """`url` with every `@` inside its userinfo percent-encoded. A host never holds `@`, so the
    userinfo runs to the last `@` before the query; SQLAlchemy splits at the first one instead,
    taking `ss@SECRET@host` of `user:p@ss@SECRET@host` for the host (and showing it in errors)."""
    scheme, sep, rest = url.partition("://")
    before_query, q, query = rest.partition("?")
    at = before_query.rfind("@")
    if not sep or at < 0 or "@" not in before_query[:at]:
        return url
    return f"{scheme}{sep}{before_query[:at].replace('@', '%40')}{before_query[at:]}{q}{query}"


def parse_url(url: str) -> URL:
    """Parse and normalise a store URL or raise StoreError (password redacted)."""
    try:
        parsed = sa.make_url(_encode_userinfo_at(url))
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


# ---- outages: what is retried, and how -----------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How `retrying` repeats a unit of store work while the server is unavailable: at most
    `attempts` tries in all, waiting `delay_s` after the first failure, then `multiplier`
    times longer after each further one, never more than `max_delay_s`, each wait varied by
    ±`jitter` (a fraction) so that many workers do not reconnect in lockstep. The default
    rides out ~23 s of outage (0.5 + 1 + 2 + 4 + 8 + 8 s): a PostgreSQL restart or a short
    network break, not a long failover (raise `attempts` for that)."""

    attempts: int = 7
    delay_s: float = 0.5
    max_delay_s: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.delay_s, self.max_delay_s, self.jitter) < 0 or self.multiplier < 1 or self.jitter > 1:
            raise ValueError("delays and jitter must be >= 0 (jitter <= 1), multiplier >= 1")

    def delay(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row (1-based)."""
        base = min(self.max_delay_s, self.delay_s * self.multiplier ** (failures - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    @property
    def max_wait_s(self) -> float:
        """Seconds waited in all before giving up (without jitter)."""
        return sum(min(self.max_delay_s, self.delay_s * self.multiplier**i) for i in range(self.attempts - 1))


DEFAULT_RETRY = RetryPolicy()
RETRY_QUERY_KEYS = {"retry_attempts": "attempts", "retry_delay_s": "delay_s", "retry_max_delay_s": "max_delay_s"}
"""Store URL query parameters that set the retry policy (taken out before the driver sees the URL)."""
_POLICY_ATTR = "_ttscale_retry_policy"


def _retry_from_url(url: URL, base: RetryPolicy) -> tuple[URL, RetryPolicy]:
    given = {key: url.query[key] for key in RETRY_QUERY_KEYS if key in url.query}
    if not given:
        return url, base
    values: dict[str, float | int] = {}
    for key, raw in given.items():
        text = raw[-1] if isinstance(raw, tuple) else raw
        try:
            values[RETRY_QUERY_KEYS[key]] = int(text) if key == "retry_attempts" else float(text)
        except ValueError:
            raise StoreError(f"store URL {redact_url(url)!r}: {key} must be a number, got {text!r}") from None
    try:
        policy = RetryPolicy(**{**base.__dict__, **values})
    except ValueError as err:
        raise StoreError(f"store URL {redact_url(url)!r}: retry settings: {err}") from None
    return url.difference_update_query(list(given)), policy


def retry_policy(engine: Engine) -> RetryPolicy:
    """The retry policy of an engine built by `make_engine` (DEFAULT_RETRY otherwise)."""
    return getattr(engine, _POLICY_ATTR, DEFAULT_RETRY)


_PERMANENT_CONNECT_ERRORS = ("password authentication failed", "no password supplied", "does not exist",
                             "no pg_hba.conf entry")


def is_transient(err: BaseException) -> bool:
    """Whether `err` means the store server dropped out — connection refused, lost or reset,
    the server shutting down or starting up, a serialization failure or deadlock (psycopg's
    OperationalError family), a connection SQLAlchemy found dead — so that repeating the
    whole unit of work may succeed. SQLite errors never are (a full disk stays full), nor are
    integrity or programming errors (bugs)."""
    if isinstance(err, StoreError):
        return bool(getattr(err, "transient", False))
    if isinstance(err, sa.exc.DisconnectionError):
        return True
    if isinstance(err, sa.exc.DBAPIError):
        if err.connection_invalidated:
            return True
        err = err.orig
        if err is None:
            return False
    import sys

    psycopg = sys.modules.get("psycopg")  # loaded whenever a PostgreSQL engine was used
    if psycopg is None:
        return False
    if isinstance(err, psycopg.OperationalError):
        # A wrong password, role or database name will not fix itself: fail at once.
        # (Errors raised while connecting often carry no SQLSTATE, hence the message check.)
        sqlstate = getattr(err, "sqlstate", None) or ""
        text = str(err)
        if sqlstate.startswith(("28", "3D")) or any(m in text for m in _PERMANENT_CONNECT_ERRORS):
            return False
        return True
    return isinstance(err, psycopg.InterfaceError) and "closed" in str(err)


def store_error(message: str, transient: bool) -> StoreError:
    """A StoreError that `is_transient` (and so `retrying`) reads as `transient` or not."""
    err = StoreError(message)
    err.transient = transient  # type: ignore[attr-defined]  # read by is_transient
    return err


def _where(engine: Engine) -> str:
    path = sqlite_path(engine.url)
    return str(path) if path is not None else redact_url(engine.url)


def _asstore_error(engine: Engine, err: Exception) -> StoreError | None:
    """A one-line StoreError for a store failure users can act on, or None (a bug: keep it).

    SQLite's operational errors (disk full, read-only file or directory, I/O error, cannot
    open, locked past the busy timeout) and a corrupt file name the database file; a server
    outage names the URL and is marked transient."""
    if isinstance(err, StoreError):
        return None
    detail = _scrub(one_line(err), engine.url)
    if engine.dialect.name == "sqlite":
        if isinstance(err, sa.exc.OperationalError) or type(err) is sa.exc.DatabaseError:
            return store_error(f"store {_where(engine)}: {detail}", transient=False)
        return None
    if is_transient(err):
        return store_error(f"store {redact_url(engine.url)} unavailable: {detail}", transient=True)
    return None


def _invalidate(conn: Connection) -> None:
    """Make sure a connection that saw the server drop out never goes back to the pool."""
    with contextlib.suppress(Exception):
        if not conn.closed and not conn.invalidated:
            conn.invalidate()


_retry_state = threading.local()


def retrying(engine: Engine, work: Callable[[], T], *, what: str = "store operation") -> T:
    """`work()`, repeated whole with exponential backoff (`retry_policy(engine)`) while it
    fails because the store is unavailable (`is_transient`); a warning is logged before each
    retry and a one-line StoreError raised when the attempts are spent. Any other error
    propagates at once. `work` must be safe to repeat: open its own connection or transaction
    and write idempotently (every store write is). Nested calls run once: the outermost
    `retrying` repeats the whole unit."""
    if getattr(_retry_state, "active", False):
        return work()
    policy = retry_policy(engine)
    _retry_state.active = True
    try:
        failures, waited = 0, 0.0
        while True:
            try:
                return work()
            except Exception as err:
                if not is_transient(err):
                    raise
                failures += 1
                detail = str(err) if isinstance(err, StoreError) else _scrub(one_line(err), engine.url)
                if failures >= policy.attempts:
                    raise store_error(
                        f"{what} gave up after {failures} attempt{'s' if failures > 1 else ''} over {waited:.1f} s: {detail}", transient=False
                    ) from err
                delay = policy.delay(failures)
                # The first failure of an outage is the user's news; the later attempts go to
                # the log file (INFO), so a store that stays down is not a screenful of warnings.
                logger.log(
                    logging.WARNING if failures == 1 else logging.INFO,
                    "store unavailable, retrying %s in %.1f s (attempt %d of %d failed): %s",
                    what, delay, failures, policy.attempts, detail,
                )  # fmt: skip
                time.sleep(delay)
                waited += delay
    finally:
        _retry_state.active = False


def run_transaction(engine: Engine, work: Callable[[Connection], T], *, what: str = "store transaction") -> T:
    """`work(conn)` in a write transaction (`transaction`), the whole transaction repeated
    while the store is unavailable (`retrying`). For idempotent writes such as `write_shard`:
    a retry after a commit whose answer was lost finds the rows stored and adds nothing."""

    def once() -> T:
        with transaction(engine) as conn:
            return work(conn)

    return retrying(engine, once, what=what)


def make_engine(url: str, *, create_dirs: bool = False, retry: RetryPolicy | None = None, **engine_kwargs: object) -> Engine:
    """An Engine for `url` (no connection is made yet).

    `create_dirs`: for a SQLite file, create its parent directory (what `ttscale db upgrade`
    does; readers leave it False so a wrong path fails instead of creating an empty store).
    `retry`: the policy `retrying` uses for this engine (default DEFAULT_RETRY); the URL's
    `retry_attempts`, `retry_delay_s` and `retry_max_delay_s` override its fields.
    """
    parsed, policy = _retry_from_url(parse_url(url), retry or DEFAULT_RETRY)
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
        # A pooled connection that a server restart killed is found dead and replaced on
        # checkout, instead of failing the first statement of the next unit of work.
        engine_kwargs.setdefault("pool_pre_ping", True)
    try:
        engine = sa.create_engine(parsed, **engine_kwargs)
    except (ArgumentError, NoSuchModuleError, ValueError, TypeError) as err:
        raise StoreError(f"store URL {redact_url(parsed)!r}: {_scrub(one_line(err), parsed)}") from None
    if parsed.drivername == "sqlite":
        _configure_sqlite(engine)
    setattr(engine, _POLICY_ATTR, policy)
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
    it raises. For the edges (CLI, runner, flows); store functions never commit.

    A failure users can act on — the SQLite file full, read-only or unreadable, the server
    gone — is re-raised as a one-line StoreError naming the file or (redacted) URL; a
    connection that saw the server drop out is invalidated, never pooled again. Not retried
    here (the block cannot be replayed): `run_transaction` does that."""
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            try:
                with conn.begin():
                    yield conn
            except Exception as err:
                if is_transient(err):
                    _invalidate(conn)
                raise
    except Exception as err:
        converted = _asstore_error(engine, err)
        if converted is None:
            raise
        raise converted from err


def connect(engine: Engine) -> Connection:
    """Open a connection or raise a one-line StoreError naming the (redacted) URL."""
    path = sqlite_path(engine.url)
    if path is not None and not path.expanduser().parent.is_dir():
        raise StoreError(f"store {redact_url(engine.url)}: no directory {path.parent}; `ttscale db upgrade` creates the store")
    try:
        return engine.connect()
    except SQLAlchemyError as err:
        message = f"cannot connect to store {redact_url(engine.url)}: {_scrub(one_line(err), engine.url)}"
        raise store_error(message, is_transient(err)) from None
