"""Alembic owns the schema: upgrade from empty, downgrade to base, upgrade again, and the
models never drift from the migrations (autogenerate comparison), on both engines."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ttscale import store
from ttscale.errors import StoreError
from ttscale.store import schema
from ttscale.store.migrate import current_revision

TABLES = {"sweeps", "cells", "sweep_cells", "problems", "problem_runs", "candidates", "nodes", "verdicts", "problem_claims"}


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
    assert store.check_reachable_and_migrated(engine) == store.head_revision() == "0005"
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


def test_upgrade_from_0001_keeps_verdicts_and_splits_the_flops(engine):
    """Data stored under 0001 survives 0002 and 0003: verdicts become doubles (pass rows 1.0/0.0, source
    `ttscale`), `policy_flops` becomes the charged figure (2 · params · generated tokens) and the
    old one (prompt counted in full) moves to `policy_flops_computed`."""
    store.upgrade(engine, "0001")
    with store.transaction(engine) as conn:
        conn.execute(sa.text(
            "INSERT INTO cells (id, model, verifier, aggregation, strategy, n, beam_width, dataset, seed, spec, "
            "source_cell_id, status, code_version, created_at, n_prompt_tokens, n_generated_tokens, n_verifier_tokens, "
            "policy_flops, verifier_flops, policy_params, verifier_params) VALUES ('c0', 'm', NULL, 'last', 'majority', 2, "
            "NULL, 'd', 0, '{}', NULL, 'done', 'v', :now, 30, 100, 0, 2600.0, 0.0, 10, 0)"
        ), {"now": "2026-01-01 00:00:00"})  # fmt: skip
        conn.execute(sa.text("INSERT INTO problems (dataset, problem_id, text, answer, level, subject, metadata) VALUES ('d', 'p', 't', '1', NULL, NULL, '{}')"))
        conn.execute(sa.text(
            "INSERT INTO problem_runs (cell_id, problem_id, dataset, n_prompt_tokens, n_generated_tokens, n_verifier_tokens, "
            "n_policy_calls, policy_flops, verifier_flops, elapsed_s, n_candidates, n_nodes, written_at) "
            "VALUES ('c0', 'p', 'd', 30, 100, 0, 1, 2600, 0, 1.0, 2, 2, :now)"
        ), {"now": "2026-01-01 00:00:00"})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO candidates (cell_id, problem_id, idx, text, answer, answer_method, answer_class, correct, score, "
            "step_scores, n_prompt_tokens, n_generated_tokens, policy_flops, finish_reason, leaf_node) "
            "VALUES ('c0', 'p', 0, 'x', '1', 'boxed', 0, :t, NULL, '[]', 30, 60, 1800, 'eos', 0)"
        ), {"t": True})  # fmt: skip
        conn.execute(sa.text("INSERT INTO verdicts (cell_id, problem_id, method, n, answer, correct) VALUES ('c0', 'p', 'pass', 2, NULL, :t)"), {"t": True})
    store.upgrade(engine)
    with store.connect(engine) as conn:
        cell = store.read_cell(conn, "c0")
        runs = store.read_problem_runs(conn, ["c0"])
        cands = store.read_candidates(conn, ["c0"])
        verdicts = store.read_verdicts(conn, ["c0"])
    assert (cell["policy_flops"], cell["policy_flops_computed"], cell["n_problems"], cell["fidelity"]) == (2000.0, 2600.0, 0, "ttscale")
    assert runs.row(0, named=True)["policy_flops"] == 2000 and runs.row(0, named=True)["policy_flops_computed"] == 2600
    assert cands.row(0, named=True)["policy_flops"] == 1200 and cands.row(0, named=True)["policy_flops_computed"] == 1800
    assert verdicts.select("source", "method", "correct").rows() == [("ttscale", "pass", 1.0)]
    store.downgrade(engine, "0001")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT policy_flops FROM problem_runs")).scalar_one() == 2600
        assert bool(conn.execute(sa.text("SELECT correct FROM verdicts")).scalar_one()) is True
