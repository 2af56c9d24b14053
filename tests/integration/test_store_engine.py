"""Engines: bad or unreachable URLs fail in one line without the password; SQLite pragmas;
the read-only role really is read-only."""

from __future__ import annotations

import socket
import uuid

import pytest
import sqlalchemy as sa

from ttscale import store
from ttscale.redaction import redact_url
from ttscale.errors import StoreError
from tests.integration.test_store_samples import sample_cell, sample_outcome

PASSWORD = "s3cr3t-Pa55"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once the socket closes: nothing listens there


def assert_one_line_without_password(err: StoreError, shown: str) -> None:
    message = str(err)
    assert "\n" not in message
    assert PASSWORD not in message
    assert shown in message


@pytest.mark.parametrize(
    "url,shown",
    [
        (f"postgresql+psycopg://user:{PASSWORD}@", "postgresql+psycopg://user:***@"),
        (f"postgresql+psycopg://user:{PASSWORD}@host:notaport/db", "user:***@host:notaport/db"),
        (f"postgresql+psycopg://user:{PASSWORD}@@:/", "postgresql+psycopg://user:***@"),
        ("notadb://x", "unsupported scheme 'notadb'"),
        (f"mysql://root:{PASSWORD}@localhost/db", "mysql://root:***@localhost/db"),
        ("not a url at all", "malformed"),
    ],
)
def test_malformed_url_is_one_line_store_error(url, shown):
    with pytest.raises(StoreError) as info:
        store.check_reachable_and_migrated(store.make_engine(url))
    assert_one_line_without_password(info.value, shown)


def test_unreachable_server_is_one_line_store_error():
    port = closed_port()
    engine = store.make_engine(f"postgresql+psycopg://ttscale:{PASSWORD}@127.0.0.1:{port}/results")
    with pytest.raises(StoreError, match="cannot connect") as info:
        store.check_reachable_and_migrated(engine)
    assert_one_line_without_password(info.value, f"postgresql+psycopg://ttscale:***@127.0.0.1:{port}/results")


def test_password_with_reserved_characters_is_redacted():
    assert redact_url("postgresql+psycopg://u:p%40ss%3Aw0rd@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redact_url("postgresql+psycopg://u:p@ss@h :x/db") == "postgresql+psycopg://u:***@h :x/db"


def test_missing_sqlite_directory_is_created_only_by_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'ttscale.db'}"
    with pytest.raises(StoreError, match="no directory"):
        store.check_reachable_and_migrated(store.make_engine(url))
    assert not (tmp_path / "deep").exists()
    engine = store.make_engine(url, create_dirs=True)
    store.upgrade(engine)
    assert (tmp_path / "deep" / "er" / "ttscale.db").is_file()


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'ttscale.db'}")
    store.upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    with pytest.raises(sa.exc.IntegrityError), store.transaction(engine) as conn:
        conn.execute(sa.text("INSERT INTO sweep_cells (sweep_id, cell_id) VALUES ('nosuch', 'nosuch')"))


@pytest.mark.postgres
def test_reader_role_can_select_but_not_write_or_drop(postgres_store_url):
    store_url = postgres_store_url
    engine = store.make_engine(store_url)
    cell = sample_cell()
    with store.transaction(engine) as conn:
        store.register_cell(conn, cell)
        store.write_shard(conn, sample_outcome(cell.cell_id))
    role = f"reader_{uuid.uuid4().hex[:8]}"
    store.create_reader_role(engine, role, PASSWORD)
    url = sa.make_url(store_url).set(username=role, password=PASSWORD)
    reader = store.make_engine(url.render_as_string(hide_password=False))
    try:
        assert store.check_reachable_and_migrated(reader) == store.head_revision()
        with reader.connect() as conn:
            assert store.read_candidates(conn, [cell.cell_id]).height == 4
        for statement in (
            "INSERT INTO sweeps (id, name, spec, spec_hash, created_by, created_at, code_version, status) "
            "VALUES ('x', 'x', 'x', 'x', 'x', now(), 'x', 'pending')",
            "DELETE FROM candidates",
            "DROP TABLE candidates",
            "CREATE TABLE sneaky (x int)",
        ):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied|must be owner"), reader.begin() as conn:
                conn.execute(sa.text(statement))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM candidates")).scalar() == 4
    finally:
        reader.dispose()
        with store.transaction(engine) as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))


@pytest.mark.postgres
def test_reader_role_sees_tables_created_later(postgres_store_url):
    store_url = postgres_store_url
    engine = store.make_engine(store_url)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    store.create_reader_role(engine, role, PASSWORD)
    with store.transaction(engine) as conn:
        conn.execute(sa.text("CREATE TABLE later_table (x int)"))  # as a future migration would
        conn.execute(sa.text("INSERT INTO later_table VALUES (7)"))
    reader = store.make_engine(sa.make_url(store_url).set(username=role, password=PASSWORD).render_as_string(hide_password=False))
    try:
        with reader.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM later_table")).scalar() == 7
    finally:
        reader.dispose()
        with store.transaction(engine) as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))


def test_reader_role_on_sqlite_explains_the_alternative(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(StoreError, match="mode=ro"):
        store.create_reader_role(engine, "ttscale_reader", PASSWORD)
