"""8 shard writers (processes) into one PostgreSQL store at once, through the real writer
(`store.write_shard`, COPY): no deadlock or hang, no lost or duplicate rows by natural key,
cell totals equal to their problems' sums. Default 8 × 20,000 nodes; `TTSCALE_LOAD_FULL=1`
writes 1,000,000 (what `benchmarks/concurrent_writers.py` records in benchmarks/RESULTS.md)."""

from __future__ import annotations

import pytest

from ttscale import store
from tests.load import benchmark, full_size

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def load_store(fresh_postgres_db):
    engine = store.make_engine(fresh_postgres_db)
    store.upgrade(engine)
    engine.dispose()
    return fresh_postgres_db


def test_eight_writers_store_every_row_exactly_once(load_store):
    cw = benchmark("concurrent_writers")
    nodes = 1_000_000 if full_size() else 8 * 20_000
    plan = cw.plan_for(n_writers=8, n_nodes=nodes)
    result = cw.run_load(load_store, plan, deadline_s=1800 if full_size() else 600)
    print("\n".join(cw.figures(result)))
    assert result.ok, result.failures
    assert result.counts == cw.expected_counts(plan)
    assert result.counts["nodes"] >= nodes
    assert result.problems_rows == plan.n_problems
    assert all(w["error"] is None and w["shards"] == len(plan.submitted(w["writer"])) for w in result.writers)


def test_writers_racing_on_every_shard_skip_what_the_other_stored(load_store):
    """Two cells, four writers each; every shard is also resubmitted by another writer of its
    cell while the original may still be in flight: each problem is stored once, the rest skip."""
    cw = benchmark("concurrent_writers")
    plan = cw.plan_for(n_writers=8, n_nodes=8 * 5_000, n_cells=2, shard_problems=10, resubmit_every=1)
    result = cw.run_load(load_store, plan, deadline_s=600)
    assert result.ok, result.failures
    written = sum(w["written_problems"] for w in result.writers)
    skipped = sum(w["skipped_problems"] for w in result.writers)
    assert written == plan.n_cells * plan.n_problems
    assert skipped == written  # every shard submitted twice: one copy written, the other skipped
