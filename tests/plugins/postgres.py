"""A real PostgreSQL server for the test session, and a fresh migrated store per test.

`postgresql_server` starts one PostgreSQL (15 preferred) with pytest-postgresql's executor,
once per session, only when a test asks for it. initdb and pg_ctl refuse to run as root, so
as root they run as the `postgres` user through a small wrapper script, in a directory
that user owns (pytest's basetemp is private to root).

`store_url` is parametrised over `sqlite` and `postgresql`: each test gets a new SQLite file
or a new PostgreSQL schema (first on the connection's search_path), upgraded to head by
Alembic — nothing is shared between tests, so order never matters. The `postgresql` case carries the `postgres` marker
(`-m "not postgres"` runs without a server). `empty_store_url` is the same, unmigrated; `postgres_store_url` is the PostgreSQL case alone.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

POSTGRES_USER = "postgres"


def _pg_ctl() -> str:
    """`TTSCALE_TEST_PG_CTL`, else the newest of /usr/lib/postgresql/*/bin/pg_ctl (15 if present)."""
    if path := os.environ.get("TTSCALE_TEST_PG_CTL"):
        return path
    preferred = "/usr/lib/postgresql/15/bin/pg_ctl"
    if os.path.exists(preferred):
        return preferred
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail("no pg_ctl found: install PostgreSQL or set TTSCALE_TEST_PG_CTL (or deselect with -m 'not postgres')")
    return found[-1]


def _server_dir() -> tuple[Path, str]:
    """A private directory the server's OS user can write, and the pg_ctl to call."""
    base = Path(tempfile.mkdtemp(prefix="ttscale-pg-"))
    pg_ctl = _pg_ctl()
    if os.geteuid() != 0:
        return base, pg_ctl
    pw = pwd.getpwnam(POSTGRES_USER)
    os.chown(base, pw.pw_uid, pw.pw_gid)
    wrapper = base / "pg_ctl"
    wrapper.write_text(f'#!/bin/sh\nexec runuser -u {POSTGRES_USER} -- {pg_ctl} "$@"\n')
    wrapper.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return base, str(wrapper)


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[object]:
    """A running PostgreSQL server (pytest_postgresql PostgreSQLExecutor) on a free port."""
    from port_for import get_port
    from pytest_postgresql.executors import PostgreSQLExecutor

    base, pg_ctl = _server_dir()
    executor = PostgreSQLExecutor(
        executable=pg_ctl,
        host="127.0.0.1",
        port=get_port(None),
        datadir=str(base / "data"),
        unixsocketdir=str(base),
        logfile=str(base / "postgresql.log"),
        startparams="-w",
        dbname="postgres",
        user=POSTGRES_USER,
        # Durability is irrelevant for throwaway test data; this makes CREATE DATABASE fast.
        postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    )
    executor.start()
    try:
        executor.wait_for_postgres()
        _wait_until_accepting(executor)
        yield executor
    finally:
        executor.stop()
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_accepting(server: object, timeout_s: float = 120.0) -> None:
    """Until a real connection succeeds: `pg_ctl status` can report a server that still answers
    "the database system is starting up" (seen on a loaded machine)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres", connect_timeout=5):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # polling a condition, not waiting for time


def server_url(server: object, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
    """A SQLAlchemy URL for `dbname` on the session's server."""
    auth = user or server.user
    if password is not None:
        auth += f":{password}"
    return f"postgresql+psycopg://{auth}@{server.host}:{server.port}/{dbname}"


def _admin(server: object, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=server.host, port=server.port, user=server.user, dbname=dbname, autocommit=True)


TEST_DB = "ttscale_test"


@pytest.fixture(scope="session")
def postgres_test_db(postgresql_server: object) -> str:
    """The database that holds one schema per test (CREATE DATABASE costs ~0.5 s; a schema ~ms)."""
    with _admin(postgresql_server) as admin:
        admin.execute(f'CREATE DATABASE "{TEST_DB}"')
    return TEST_DB


@pytest.fixture
def fresh_postgres_schema(postgresql_server: object, postgres_test_db: str) -> Iterator[str]:
    """URL of a new, empty schema (first on the search_path) in the test database."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with _admin(postgresql_server, postgres_test_db) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield server_url(postgresql_server, postgres_test_db) + f"?options=-csearch_path%3D{name}"
    finally:
        with _admin(postgresql_server, postgres_test_db) as admin:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def fresh_postgres_db(postgresql_server: object) -> Iterator[str]:
    """A new, empty database on the session's server (for database-wide things such as roles)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with _admin(postgresql_server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url(postgresql_server, name)
    finally:
        with _admin(postgresql_server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'ttscale.db'}"
    return request.getfixturevalue("fresh_postgres_schema")


ENGINES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a new, empty (unmigrated) store, on each engine."""
    return _fresh_url(request, tmp_path)


def migrated(url: str) -> str:
    """`url`, its store upgraded to head by Alembic."""
    from ttscale.store import make_engine, upgrade

    engine = make_engine(url, create_dirs=True)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a new store upgraded to head by Alembic, on each engine."""
    return migrated(_fresh_url(request, tmp_path))


@pytest.fixture
def postgres_store_url(fresh_postgres_db: str) -> str:
    """URL of a new PostgreSQL store at head, for PostgreSQL-only behaviour (mark the test `postgres`)."""
    return migrated(fresh_postgres_db)
