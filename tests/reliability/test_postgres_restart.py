"""Fault: the PostgreSQL store goes away and comes back (`pg_ctl restart -m fast`, or a stop
and a start some seconds later) while a sweep writes to it.

`pg_ctl stop -m fast` terminates every backend: a transaction in flight fails, pooled
connections are dead, and new ones are refused until the server is up. ttscale repeats the
whole unit of work — connection, transaction, commit — with exponential backoff
(`store.retrying`, `store.run_transaction`), invalidating the broken connection, and logs a
warning per retry; a shard is all-or-nothing and idempotent, so repeating its write stores
it once. Each test uses a cluster of its own (`pg_cluster`), never the session's server.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from tests.cli import TTSCALE
from tests.integration.test_store_samples import sample_cell, sample_outcome
from tests.orchestration import env_for, migrated_store, read_all, small_spec
from tests.reliability.faults import (
    assert_stored_exactly_once,
    computed_since,
    fault_env,
    one_cell_run_args,
    stored_keys,
    sweep_id_of,
    wait_mid_shard,
)

PASSWORD = "s3cr3t-Pa55"


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def retry_warnings():
    handler = _Warnings()
    logger = logging.getLogger("ttscale.store.engine")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def test_retry_settings_come_from_the_store_url_and_never_reach_the_driver():
    from ttscale import store
    from ttscale.errors import StoreError
    from ttscale.store.engine import DEFAULT_RETRY, retry_policy

    engine = store.make_engine(f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/db?retry_attempts=3&retry_delay_s=0.1&retry_max_delay_s=0.2&application_name=x")
    assert retry_policy(engine) == store.RetryPolicy(attempts=3, delay_s=0.1, max_delay_s=0.2)
    assert dict(engine.url.query) == {"application_name": "x"}
    assert retry_policy(store.make_engine("sqlite:///x.db")) == DEFAULT_RETRY
    assert DEFAULT_RETRY.attempts == 7 and DEFAULT_RETRY.max_wait_s == pytest.approx(23.5)
    for bad, shown in [("retry_attempts=0", "attempts must be at least 1"), ("retry_delay_s=soon", "retry_delay_s must be a number")]:
        with pytest.raises(StoreError, match=shown) as info:
            store.make_engine(f"postgresql+psycopg://u:{PASSWORD}@h/db?{bad}")
        assert PASSWORD not in str(info.value) and "\n" not in str(info.value)


def test_a_store_that_stays_down_fails_in_one_line_after_the_bounded_retries(retry_warnings):
    from ttscale import store
    from ttscale.errors import StoreError
    from tests.plugins.prefect_mlflow import free_port

    port = free_port()  # nothing listens there
    engine = store.make_engine(f"postgresql+psycopg://ttscale:{PASSWORD}@127.0.0.1:{port}/results?retry_attempts=3&retry_delay_s=0.05")
    start = time.monotonic()
    with pytest.raises(StoreError, match=r"writing the shard gave up after 3 attempts") as info:
        store.run_transaction(engine, lambda conn: conn.execute(sa.text("SELECT 1")), what="writing the shard")
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert "\n" not in message and PASSWORD not in message and f"ttscale:***@127.0.0.1:{port}/results" in message
    # one warning for the outage (the later attempts are INFO lines, for the log file)
    assert len(retry_warnings) == 1 and "store unavailable, retrying writing the shard" in retry_warnings[0]
    # A bug is not an outage: it is raised at once, never retried.
    retry_warnings.clear()
    with pytest.raises(ZeroDivisionError):
        store.retrying(engine, lambda: 1 / 0)
    assert retry_warnings == []


@pytest.mark.postgres
def test_shard_write_cut_by_a_server_restart_is_retried_whole_and_stored_once(pg_cluster, retry_warnings):
    from ttscale import store

    url = migrated_store(pg_cluster.create_database("ttscale"))
    # A patient policy: the point is the mechanism, and a start on a busy machine can be slow.
    engine = store.make_engine(url, retry=store.RetryPolicy(attempts=15, delay_s=0.25, max_delay_s=2.0))
    cell = sample_cell()
    with store.transaction(engine) as conn:
        store.register_cell(conn, cell)
    outcome = sample_outcome(cell.cell_id)

    struck = threading.Event()
    restarted = threading.Event()

    def strike(conn, cursor, statement, parameters, context, executemany) -> None:
        # Right after the shard claimed its problems, inside its transaction: the server goes
        # down (every backend terminated), and comes back 3 s later.
        if struck.is_set() or "INSERT INTO problem_runs" not in statement:
            return
        struck.set()
        pg_cluster.stop("fast")

        def start_later() -> None:
            time.sleep(3)
            pg_cluster.start()
            restarted.set()

        threading.Thread(target=start_later, daemon=True).start()

    sa.event.listen(engine, "after_cursor_execute", strike)
    attempts = []

    def write(conn):
        attempts.append(time.monotonic())
        return store.write_shard(conn, outcome)

    report = store.run_transaction(engine, write, what="writing the shard")
    assert struck.is_set() and restarted.wait(120)
    assert len(attempts) >= 2, "the first transaction should have failed"
    assert report.n_written_problems == 2 and report.n_skipped_problems == 0
    assert retry_warnings and all("store unavailable, retrying writing the shard" in m for m in retry_warnings)

    with engine.connect() as conn:
        runs = store.read_problem_runs(conn, [cell.cell_id])
        cands = store.read_candidates(conn, [cell.cell_id])
        verdicts = store.read_verdicts(conn, [cell.cell_id])
        cells = store.read_cells(conn)
    assert runs.height == 2 and cands.height == 4 and verdicts.height == 8
    assert cands.select("cell_id", "problem_id", "idx").n_unique() == 4
    row = cells.filter(pl.col("cell_id") == cell.cell_id).row(0, named=True)
    assert row["n_generated_tokens"] == runs["n_generated_tokens"].sum()  # totals added once

    # Writing the same shard again (what a retry after a lost COMMIT answer does) adds nothing.
    again = store.run_transaction(engine, lambda conn: store.write_shard(conn, outcome))
    assert again.n_written_problems == 0 and again.n_skipped_problems == 2 and again.n_rows == 0
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("command", ["sweep run", "run"])
def test_sweep_survives_postgres_restarts_mid_shard(command, pg_cluster, tmp_path: Path, mlflow_uri, background):
    """`ttscale sweep run` and `ttscale run` (a one-cell sweep) ride out the same outages."""
    url = migrated_store(pg_cluster.create_database("ttscale"))
    spec = small_spec(tmp_path, "pg-restart")
    trace = tmp_path / "trace.jsonl"
    env = fault_env(env_for(tmp_path / "home", url, mlflow_uri), trace=trace, delay_s=1.5)
    args = ["sweep", "run", str(spec)] if command == "sweep run" else one_cell_run_args()
    proc = background.start([TTSCALE, *args], env, "sweep-run")
    log = background.logs / "sweep-run.log"

    # 1. `pg_ctl restart -m fast` while a shard computes: pooled connections die.
    first = wait_mid_shard(url, trace, proc, min_stored=1, log=log)
    pg_cluster.restart("fast")
    # 2. Down for 8 s while the next shard computes: its write (and whatever the sweep does
    #    next) meets a refused connection and waits it out with backoff.
    second = wait_mid_shard(url, trace, proc, min_stored=1, log=log, exclude=first.keys)
    pg_cluster.stop("fast")
    time.sleep(8)
    pg_cluster.start()

    proc.wait(timeout=1200)
    output = background.log(proc)
    assert proc.returncode == 0, output[-6000:]
    assert "store unavailable, retrying" in output, output[-6000:]
    assert "tracking: complete" in output

    sweep_id = sweep_id_of(url, "pg-restart") if command == "sweep run" else read_all(url, "")["sweeps"]["sweep_id"][0]
    assert_stored_exactly_once(url, sweep_id)
    computed = computed_since(trace, 0)
    assert len(computed) == len(set(computed)) == 15, "a shard ran twice: the store retry should have saved it"
    assert first.keys | second.keys <= stored_keys(url)
    assert read_all(url, "")["sweeps"]["status"].to_list() == ["done"]


@pytest.mark.slow
@pytest.mark.postgres
def test_store_down_for_good_mid_sweep_ends_in_one_error_line(pg_cluster, tmp_path: Path, mlflow_uri, background):
    """PostgreSQL stopped mid-shard and never restarted: the sweep gives up once the bounded
    retries are spent, and says so once — no Prefect tracebacks on the terminal (they are in the
    log file), one `error:` line naming the redacted URL."""
    url = migrated_store(pg_cluster.create_database("ttscale"))
    spec = small_spec(tmp_path, "pg-down")
    trace = tmp_path / "trace.jsonl"
    env = fault_env(env_for(tmp_path / "home", url, mlflow_uri), trace=trace, delay_s=1.5)
    proc = background.start([TTSCALE, "sweep", "run", str(spec)], env, "sweep-run")
    wait_mid_shard(url, trace, proc, min_stored=1, log=background.logs / "sweep-run.log")
    pg_cluster.stop("fast")
    try:
        proc.wait(timeout=1200)
    finally:
        pg_cluster.start()
    output = background.log(proc)
    assert proc.returncode == 1, output[-6000:]
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "gave up after" in errors[0], output[-6000:]
    # one warning per store operation that met the outage, not one per attempt
    warnings = [line for line in output.splitlines() if line.startswith("warning: store unavailable")]
    assert 1 <= len(warnings) <= 4, output[-6000:]
    assert "Traceback" not in output, output[-6000:]
    assert "log: " in output  # the tracebacks are there, for whoever debugs
