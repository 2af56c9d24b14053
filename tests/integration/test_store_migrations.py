"""Alembic owns the schema: upgrade from empty, downgrade to base, upgrade again, and the
models never drift from the migrations (autogenerate comparison), on both engines."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ttscale import store
from ttscale.errors import StoreError
from ttscale.store import schema
from ttscale.store.migrate import current_revision

TABLES = {"sweeps", "cells", "sweep_cells", "problems", "problem_runs", "candidates", "nodes", "verdicts"}


@pytest.fixture
def engine(empty_store_url):
    eng = store.make_engine(empty_store_url, create_dirs=True)
    yield eng
    eng.dispose()


def tables(engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(engine):
    assert tables(engine) == set()
    with pytest.raises(StoreError, match="run `ttscale db upgrade`"):
        store.check_reachable_and_migrated(engine)
    store.upgrade(engine)
    assert tables(engine) == TABLES
    assert store.check_reachable_and_migrated(engine) == store.head_revision() == "0002"
    store.downgrade(engine, "base")
    assert tables(engine) == set()
    with engine.connect() as conn:
        assert current_revision(conn) is None
    store.upgrade(engine)
    assert tables(engine) == TABLES


def test_migrations_match_the_models(engine):
    store.upgrade(engine)
    with engine.connect() as conn:
        assert store.schema_drift(conn) == []


def test_drift_is_detected(engine):
    """The comparison is live: a schema changed behind Alembic's back shows up."""
    store.upgrade(engine)
    with store.transaction(engine) as conn:
        conn.execute(sa.text("DROP INDEX ix_sweep_cells_cell_id"))
        conn.execute(sa.text("ALTER TABLE nodes ADD COLUMN extra INTEGER"))
    with engine.connect() as conn:
        drift = store.schema_drift(conn)
    kinds = sorted(d[0] for d in drift)
    assert kinds == ["add_index", "remove_column"], drift  # what the models would add back / drop


def test_constraint_names_follow_the_naming_convention(engine):
    store.upgrade(engine)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        fks = {fk["name"] for fk in inspector.get_foreign_keys("problem_runs")}
        uniques = {uq["name"] for uq in inspector.get_unique_constraints("sweeps")}
    assert fks == {"fk_problem_runs_cell_id_cells", "fk_problem_runs_dataset_problem_id_problems"}
    assert uniques == {"uq_sweeps_name_spec_hash"}
    assert schema.metadata.naming_convention["pk"] == "pk_%(table_name)s"


def test_unknown_revision_is_a_one_line_store_error(engine):
    with pytest.raises(StoreError, match="upgrade of store") as info:
        store.upgrade(engine, "9999")
    assert "\n" not in str(info.value)
