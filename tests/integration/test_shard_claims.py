"""`runner.run_shard` with claims, in this process on the scripted model, on SQLite and
PostgreSQL: problems another live run computes are deferred and never computed here; with
`wait` they are waited for until that run stores them; a dead or lapsed run's problems are
computed at once; the heartbeat extends claims; a failed shard frees its claims."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ttscale import runner, store
from ttscale.planning import prepare_cell
from ttscale.settings import Settings
from ttscale.spec import CellSpec
from ttscale.store import Claimant, schema
from ttscale.store.schema import utcnow
from tests.integration.test_store_claims import dead_pid

CELL = CellSpec(model="scripted", verifier="scripted", strategy={"name": "best_of_n"}, n=2, dataset={"name": "arith", "limit": 5})


@pytest.fixture
def setup(store_url, tmp_path, monkeypatch):
    """(engine, settings, problem ids, the problems each `search_shard` call computed)."""
    settings = Settings.from_env({"TTSCALE_HOME": str(tmp_path / "home"), "TTSCALE_DATABASE_URL": store_url})
    computed: list[list[str]] = []
    search = runner.search_shard

    def counting(cell, problems, *args, **kwargs):
        computed.append([p.id for p in problems])
        return search(cell, problems, *args, **kwargs)

    monkeypatch.setattr(runner, "search_shard", counting)
    engine = store.make_engine(store_url)
    yield engine, settings, [p.id for p in prepare_cell(CELL, settings).problems], computed
    engine.dispose()


def claim_as(engine, claimant: Claimant, ids: list[str], now=None) -> None:
    with store.transaction(engine) as conn:
        got = store.claim_problems(conn, CELL.cell_id, ids, claimant, ttl_s=runner.CLAIM_TTL_S, now=now)
    assert got.claimed == set(ids)


def stored(engine) -> set[str]:
    with engine.connect() as conn:
        return store.done_problem_ids(conn, CELL.cell_id)


def claims(engine) -> dict[str, str]:
    c = schema.problem_claims.c
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(c.problem_id, c.owner)).all())


def wait_until(predicate, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # polling a condition
    return value


def test_problems_another_run_computes_are_deferred_then_waited_for(setup, caplog):
    engine, settings, ids, computed = setup
    caplog.set_level(logging.INFO, logger="ttscale.runner")
    other = Claimant.new()  # another run, alive (this very process)
    claim_as(engine, other, ids[:2])

    report = runner.run_shard(engine, CELL, ids, settings)
    assert report.deferred == tuple(ids[:2]) and (report.n_written, report.n_skipped) == (3, 0) and not report.cell_done
    assert computed == [ids[2:]] and stored(engine) == set(ids[2:])
    assert claims(engine) == {ids[0]: other.owner, ids[1]: other.owner}  # its own released as it wrote

    waited: list[runner.ShardReport] = []
    waiter = threading.Thread(target=lambda: waited.append(runner.run_shard(engine, CELL, ids, settings, wait=True)))
    waiter.start()
    wait_until(lambda: "shard waiting" in caplog.text)
    # The other run stores its two problems and releases its claims in one transaction.
    runtime = runner.load_cell_runtime(prepare_cell(CELL, settings), settings)
    outcome = runner.search_shard(CELL, [p for p in runtime.prepared.problems if p.id in ids[:2]], runtime)
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
        store.release_claims(conn, other.owner)
    waiter.join(timeout=120)

    (report,) = waited
    assert (report.n_written, report.n_skipped, report.deferred, report.cell_done) == (0, 5, (), True)
    assert computed == [ids[2:], ids[:2]]  # the waiter computed nothing: the second is the other run's
    assert stored(engine) == set(ids) and claims(engine) == {}


@pytest.mark.parametrize("gone", ["dead process on this host", "lapsed claim of another host"])
def test_problems_of_a_run_that_is_gone_are_computed_at_once(setup, gone):
    engine, settings, ids, computed = setup
    if gone.startswith("dead"):
        claim_as(engine, Claimant("dead-run", Claimant.new().host, dead_pid()), ids[:2])
    else:
        claim_as(engine, Claimant("hung-run", "another-host", 1), ids[:2], now=utcnow() - timedelta(seconds=2 * runner.CLAIM_TTL_S))
    report = runner.run_shard(engine, CELL, ids, settings)
    assert (report.n_written, report.deferred, report.cell_done) == (5, (), True)
    assert computed == [ids] and claims(engine) == {}


def test_the_heartbeat_extends_claims_until_the_block_ends(setup):
    engine, _, ids, _ = setup
    me = Claimant.new()
    claim_as(engine, me, ids)

    def expiry():
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(schema.problem_claims.c.expires_at))).scalar_one()

    first = expiry()
    with runner.keep_claims(engine, me.owner, len(ids), interval_s=0.05):
        wait_until(lambda: expiry() > first)
    assert not [t for t in threading.enumerate() if t.name == "ttscale-claims-heartbeat"]


def test_a_failed_shard_frees_its_claims(setup, monkeypatch):
    engine, settings, ids, _ = setup

    def fails(*args, **kwargs):
        assert set(claims(engine)) == set(ids)  # claimed while it computes
        raise RuntimeError("the policy died")

    monkeypatch.setattr(runner, "search_shard", fails)
    with pytest.raises(RuntimeError, match="the policy died"):
        runner.run_shard(engine, CELL, ids, settings)
    assert claims(engine) == {} and stored(engine) == set()
