"""Fault: the Prefect server of team mode restarts while a sweep runs on a worker.

A `prefect server start` of the test's own, configured as docs/reliability.md asks of a team
server (its database on PostgreSQL, concurrency leases on disk; both survive the restart), a
`ttscale worker` with one GPU slot, a PostgreSQL store, the scripted model slowed so a shard
lasts seconds. The sweep is submitted without waiting; while a shard computes, the server is
stopped (SIGTERM) and started again on the same port 5 s later.

The worker rides out the outage and reconnects; the shard in flight stores its results (the
store does not need Prefect) but fails releasing its GPU slot, is retried once the slot's
lease lapses, and skips everything (all stored); the queued shards then run. The sweep
finishes by itself: every problem stored once, nothing stored before the restart computed
again, and resubmitting the finished sweep queues nothing.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cli import TTSCALE
from tests.orchestration import env_for, migrated_store, read_all, small_spec
from tests.reliability.faults import (
    N_PROBLEM_RUNS,
    assert_stored_exactly_once,
    computed_since,
    fault_env,
    read_trace,
    stored_keys,
    team_server_settings,
    wait_for,
    wait_mid_shard,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _shard_runs(api_url: str, sweep_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["ttscale-shard"])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"ttscale.sweep:{sweep_id}"])),
        )


def test_prefect_server_restart_mid_team_sweep_completes_with_nothing_run_twice(
    tmp_path: Path, background, servers, prefect_database_url, fresh_postgres_db, mlflow_uri
):
    server = servers.prefect(**team_server_settings(prefect_database_url))
    server.start()
    url = migrated_store(fresh_postgres_db)
    spec = small_spec(tmp_path, "prefect-restart")
    trace = tmp_path / "trace.jsonl"
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    env = fault_env(
        env_for(tmp_path / "home", url, mlflow_uri, PREFECT_API_URL=server.api_url, PREFECT_WORKER_QUERY_SECONDS="1"),
        trace=trace,
        delay_s=1.5,
    )
    worker = background.start([TTSCALE, "worker", "--pool", pool, "--gpus", "0"], env, "worker")
    worker_log = background.logs / "worker.log"
    got = subprocess.run([TTSCALE, "sweep", "submit", str(spec), "--pool", pool, "--no-wait"], env=env, capture_output=True, text=True, timeout=600)
    assert got.returncode == 0 and "6 shard runs queued" in got.stdout, got.stdout[-3000:] + got.stderr[-5000:]
    sweep_id = read_all(url, "")["sweeps"]["sweep_id"][0]

    wait_mid_shard(url, trace, worker, min_stored=3, timeout_s=900, log=worker_log)
    server.stop()  # SIGTERM: the server goes down while the worker's flow run computes
    time.sleep(5)
    stored_at_restart = stored_keys(url)  # nothing can start while the server is down
    restarted_at = time.time()
    server.start()

    def done():
        return read_all(url, sweep_id)["sweeps"]["status"].to_list() == ["done"]

    # The worker reconnects by itself; the shard whose slot release met the outage is retried
    # once its lease lapses (~1 min) and finds its problems stored; the queued runs follow.
    wait_for(done, 900, "the sweep to finish after the restart", poll_s=2, proc=worker, log=worker_log)
    runs = _shard_runs(server.api_url, sweep_id)
    assert len(runs) == 6 and {r.state.type.value for r in runs} == {"COMPLETED"}, [(r.name, r.state.name) for r in runs]
    assert worker.poll() is None, "the worker died with the server"
    assert_stored_exactly_once(url, sweep_id)
    recomputed = computed_since(trace, restarted_at)
    assert not set(recomputed) & stored_at_restart, "problems stored before the restart ran again"
    assert len(recomputed) == len(set(recomputed)), "a problem ran twice after the restart"

    # Resubmitting a finished sweep queues nothing and changes nothing.
    before = read_all(url, sweep_id)["runs"].sort("cell_id", "problem_id")
    again = subprocess.run([TTSCALE, "sweep", "submit", str(spec), "--pool", pool, "--wait"], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "0 shard runs queued" in again.stdout, again.stdout[-3000:] + again.stderr[-5000:]
    after = read_all(url, sweep_id)["runs"].sort("cell_id", "problem_id")
    assert after.select("cell_id", "problem_id", "written_at").equals(before.select("cell_id", "problem_id", "written_at"))
    assert len({(e["cell_id"], p) for e in read_trace(trace) if e["event"] == "start" for p in e["problem_ids"]}) == N_PROBLEM_RUNS
