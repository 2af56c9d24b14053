"""The dashboard's read-only PostgreSQL role (store.create_reader_role, docs/store.md): through
its URL, as TTSCALE_DASHBOARD_DATABASE_URL, every page's loader reads; INSERT, UPDATE,
DELETE, TRUNCATE, DROP TABLE and CREATE TABLE all fail with permission errors, on the
dashboard's own engine."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
import sqlalchemy as sa

from ttscale import store
from tests.integration.test_store_samples import store_sample_sweep
from tests.security import dashboard_data

pytestmark = pytest.mark.postgres
PASSWORD = "r3ader-P4ss"
WRITES = {
    "insert": "INSERT INTO sweeps (id, name, spec, spec_hash, created_by, created_at, code_version, status) "
    "VALUES ('0123456789abcdef', 'x', 'x', 'x', 'x', now(), 'x', 'pending')",
    "update": "UPDATE cells SET status = 'failed'",
    "delete": "DELETE FROM candidates",
    "truncate": "TRUNCATE nodes",
    "drop_table": "DROP TABLE candidates",
    "create_table": "CREATE TABLE sneaky (x int)",
    "alter_table": "ALTER TABLE cells ADD COLUMN sneaky int",
}


@pytest.fixture
def reader(postgres_store_url, monkeypatch):
    """A store with one sweep, the reader role, and the dashboard configured to use it."""
    engine = store.make_engine(postgres_store_url)
    sweep_id, cell = store_sample_sweep(engine)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    store.create_reader_role(engine, role, PASSWORD)
    url = sa.make_url(postgres_store_url).set(username=role, password=PASSWORD).render_as_string(hide_password=False)
    monkeypatch.setenv("TTSCALE_DASHBOARD_DATABASE_URL", url)
    try:
        yield url, engine, sweep_id, cell
    finally:
        data = dashboard_data.load()
        data.engine(url).dispose()
        with store.transaction(engine) as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        engine.dispose()


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("sweeps", "cells", "candidates", "nodes")}


def test_the_dashboard_reads_through_the_reader_role(reader):
    url, _, sweep_id, cell = reader
    data = dashboard_data.load()
    assert data.database_url() == url  # the role's URL is what the pages use
    assert data.sweeps(url)["sweep_id"].to_list() == [sweep_id]
    assert data.cells(url, sweep_id)["cell_id"].to_list() == [cell.cell_id]
    assert data.cell_problems(url, cell.cell_id).height == 2
    assert data.analyse(url, (cell.cell_id,)).n_candidates == 4
    view = data.problem_view(url, cell.cell_id, "test/algebra/1.json", "math500")
    assert view.candidates.height == 2 and view.nodes.height == 5
    names = zipfile.ZipFile(io.BytesIO(data.export_sweep_zip(url, sweep_id, "parquet"))).namelist()
    assert "candidates.parquet" in names and "sweep.json" in names
    with store.connect(data.engine(url)) as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one().startswith("reader_")


@pytest.mark.parametrize("statement", WRITES)
def test_the_reader_role_cannot_write_or_drop(reader, statement):
    url, owner, _, _ = reader
    before = counts(owner)
    data = dashboard_data.load()
    with pytest.raises(sa.exc.ProgrammingError) as err, data.engine(url).begin() as conn:
        conn.execute(sa.text(WRITES[statement]))
    assert type(err.value.orig).__name__ == "InsufficientPrivilege", err.value.orig
    assert "permission denied" in str(err.value.orig) or "must be owner" in str(err.value.orig)
    assert counts(owner) == before
    with owner.connect() as conn:
        assert "sneaky" not in sa.inspect(conn).get_table_names()
        assert "sneaky" not in {c["name"] for c in sa.inspect(conn).get_columns("cells")}
