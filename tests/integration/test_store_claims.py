"""Claims on SQLite and PostgreSQL: which problems a run may compute — free, lapsed, held by a
live run, left by a dead process on this host, stored meanwhile — and claimants racing for
the same problems, each problem won by exactly one without an error."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ttscale import store
from ttscale.store import Claimant, ClaimResult, schema
from ttscale.store.schema import utcnow
from tests.integration.test_store_samples import sample_cell, sample_outcome

CELL = "c" * 16
PROBLEMS = ["p0", "p1", "p2", "p3"]
TTL_S = 120.0
HERE = Claimant.new().host


@pytest.fixture
def engine(store_url):
    eng = store.make_engine(store_url)
    yield eng
    eng.dispose()


def claim(engine, claimant: Claimant, problem_ids=PROBLEMS, now=None, cell_id=CELL) -> ClaimResult:
    with store.transaction(engine) as conn:
        return store.claim_problems(conn, cell_id, problem_ids, claimant, ttl_s=TTL_S, now=now)


def owners(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(schema.problem_claims.c.problem_id, schema.problem_claims.c.owner)).all())


def dead_pid() -> int:
    """The id of a process of this host that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_free_problems_are_claimed_and_a_live_runs_are_held(engine):
    first, second = Claimant.new(), Claimant.new()
    assert claim(engine, first, PROBLEMS[:2]) == ClaimResult(claimed=frozenset(PROBLEMS[:2]))
    got = claim(engine, second)
    assert got.claimed == {"p2", "p3"} and got.held == {"p0", "p1"} and not got.stored
    assert owners(engine) == {"p0": first.owner, "p1": first.owner, "p2": second.owner, "p3": second.owner}
    with engine.connect() as conn:
        assert store.held_problem_ids(conn, CELL, PROBLEMS, first) == {"p2", "p3"}
        assert store.held_problem_ids(conn, CELL, PROBLEMS, second) == {"p0", "p1"}
        assert store.held_problem_ids(conn, "d" * 16, PROBLEMS, second) == set()  # claims are per cell


def test_a_claim_lapses_unless_its_heartbeat_extends_it(engine):
    t0 = utcnow()
    first, second = Claimant.new(), Claimant(Claimant.new().owner, "another-host", 1)
    claim(engine, first, now=t0)
    with store.transaction(engine) as conn:  # a heartbeat just before the claim would lapse
        assert store.extend_claims(conn, first.owner, ttl_s=TTL_S, now=t0 + timedelta(seconds=TTL_S - 1)) == 4
    assert claim(engine, second, now=t0 + timedelta(seconds=TTL_S + 1)).held == set(PROBLEMS)  # still alive
    lapsed_at = t0 + timedelta(seconds=2 * TTL_S)  # no heartbeat since: taken over
    assert claim(engine, second, now=lapsed_at).claimed == set(PROBLEMS)
    with store.transaction(engine) as conn:  # the first run's next beat finds its claims gone
        assert store.extend_claims(conn, first.owner, ttl_s=TTL_S, now=lapsed_at) == 0
    assert set(owners(engine).values()) == {second.owner}


def test_a_dead_process_on_this_host_frees_its_claims_at_once(engine):
    gone = Claimant(Claimant.new().owner, HERE, dead_pid())
    claim(engine, gone)
    assert claim(engine, Claimant.new()).claimed == set(PROBLEMS)


def test_a_process_of_another_host_is_not_judged_by_this_hosts_pids(engine):
    elsewhere = Claimant(Claimant.new().owner, "another-host", dead_pid())
    claim(engine, elsewhere)
    assert claim(engine, Claimant.new()).held == set(PROBLEMS)


def test_a_claimant_may_claim_again_and_release_frees_only_its_own(engine):
    first, second = Claimant.new(), Claimant.new()
    claim(engine, first, PROBLEMS[:2])
    assert claim(engine, first, PROBLEMS[:3]).claimed == {"p0", "p1", "p2"}  # its own claims renewed
    claim(engine, second)
    with store.transaction(engine) as conn:
        assert store.release_claims(conn, first.owner) == 3
    assert owners(engine) == {"p3": second.owner}
    assert claim(engine, Claimant.new()).claimed == {"p0", "p1", "p2"}


def test_stored_problems_are_never_claimed(engine):
    cell = sample_cell()
    outcome = sample_outcome(cell.cell_id)
    stored = {p.id for p in outcome.problems}
    with store.transaction(engine) as conn:
        store.register_cell(conn, cell)
        store.write_shard(conn, outcome)
    got = claim(engine, Claimant.new(), [*sorted(stored), "other"], cell_id=cell.cell_id)
    assert got == ClaimResult(claimed=frozenset({"other"}), stored=frozenset(stored))
    assert set(owners(engine)) == {"other"}  # no claim left on a stored problem


@pytest.mark.parametrize("lapsed", [False, True], ids=["unclaimed", "lapsed"])
def test_racing_claimants_each_win_distinct_problems_without_errors(engine, lapsed):
    """Eight claimants at once on 40 problems (unclaimed, or all held by lapsed claims that
    every racer tries to replace): each problem is won by exactly one, none fails."""
    problems = [f"p{i:02d}" for i in range(40)]
    if lapsed:
        claim(engine, Claimant(Claimant.new().owner, "another-host", 1), problems, now=utcnow() - timedelta(seconds=2 * TTL_S))
    start = threading.Barrier(8)
    results: list[ClaimResult] = []
    errors: list[BaseException] = []

    def race(i: int) -> None:
        mine = problems[i:] + problems[:i]  # different orders
        try:
            start.wait(timeout=60)
            results.append(store.run_transaction(engine, lambda conn: store.claim_problems(conn, CELL, mine, Claimant.new(), ttl_s=TTL_S)))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 8
    won = [pid for r in results for pid in r.claimed]
    assert sorted(won) == problems  # every problem once
    for r in results:
        assert r.claimed | r.held == set(problems) and not r.claimed & r.held
    assert len(set(owners(engine).values())) == len([r for r in results if r.claimed])
