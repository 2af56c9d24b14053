"""Team mode on loopback: a `prefect server start` on 127.0.0.1, a process work pool, two
`ttscale worker`s, a PostgreSQL store; shards spread over both workers, results identical to
local mode; a worker killed mid-shard loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import uuid

import polars as pl
import pytest

from tests.cli import TTSCALE, ttscale
from tests.orchestration import env_for, migrated_store, read_all, results_view, run_spec, small_spec, sqlite_store

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_store(fresh_postgres_db) -> str:
    return migrated_store(fresh_postgres_db)


def _team_env(tmp_path, server: str, store_url: str, mlflow_uri: str) -> dict[str, str]:
    return env_for(tmp_path / "home", store_url, mlflow_uri, PREFECT_API_URL=server, PREFECT_WORKER_QUERY_SECONDS="1")


def _start_worker(background, env: dict[str, str], pool: str, gpu: str):
    return background.start([TTSCALE, "worker", "--pool", pool, "--gpus", gpu], env, f"worker-{gpu}")


def _client(server: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Ctx:
        def __enter__(self):
            self._settings = temporary_settings(updates={PREFECT_API_URL: server})
            self._settings.__enter__()
            self._client = get_client(sync_client=True).__enter__()
            return self._client

        def __exit__(self, *exc):
            self._client.__exit__(*exc)
            self._settings.__exit__(*exc)

    return _Ctx()


def _shard_runs(server: str, sweep_id: str) -> list:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags

    with _client(server) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["ttscale-shard"])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"ttscale.sweep:{sweep_id}"])),
        )


def _slot_of(server: str, run_id) -> str | None:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with _client(server) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    for log in logs:
        match = re.search(r"^shard cell=\w+ .* slot=(\S+)$", log.message)
        if match:
            return match.group(1)
    return None


def _wait(predicate, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")


def test_team_mode_spreads_shards_over_two_workers_and_matches_local(
    prefect_server, prefect_harness, background, monkeypatch, tmp_path, pg_store, mlflow_uri
):
    from ttscale.settings import Settings

    spec = small_spec(tmp_path, "team", shard_size=3)
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    env = _team_env(tmp_path, prefect_server, pg_store, mlflow_uri)
    for gpu in ("0", "1"):
        _start_worker(background, env, pool, gpu)
    got = ttscale("sweep", "submit", str(spec), "--pool", pool, "--wait", env=env, timeout=900)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-5000:]
    assert "6 shard runs queued" in got.stdout

    team = read_all(pg_store, "")
    sweep = team["sweeps"].row(0, named=True)
    team = read_all(pg_store, sweep["sweep_id"])
    assert sweep["status"] == "done" and set(team["cells"]["status"]) == {"done"}
    assert sweep["mlflow_run_id"] is not None  # tracked once every shard was done
    runs = _shard_runs(prefect_server, sweep["sweep_id"])
    assert len(runs) == 6 and {r.state.type.value for r in runs} == {"COMPLETED"}
    host = socket.gethostname()
    slots = {_slot_of(prefect_server, r.id) for r in runs}
    assert slots == {f"{host}-0", f"{host}-1"}, slots  # both workers ran shards

    # The same spec in local mode (in-process, another store): identical results.
    local_url = sqlite_store(tmp_path, "local")
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path / "local-home"))
    monkeypatch.setenv("TTSCALE_DATABASE_URL", local_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'local-mlflow.db'}")
    summary = run_spec(spec, Settings.from_env())
    assert summary["sweep_id"] == sweep["sweep_id"] and summary["status"] == "done"
    local = read_all(local_url, sweep["sweep_id"])
    assert local["candidates"].height == team["candidates"].height > 0
    assert results_view(local) == results_view(team)


def test_killed_worker_loses_no_shard_and_duplicates_nothing(prefect_server, background, tmp_path, pg_store, mlflow_uri):
    from ttscale import store
    from ttscale.spec import as_cell

    spec = small_spec(tmp_path, "kill", shard_size=3)
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    env = _team_env(tmp_path, prefect_server, pg_store, mlflow_uri)
    first = _start_worker(background, env, pool, "0")
    got = ttscale("sweep", "submit", str(spec), "--pool", pool, "--no-wait", env=env, timeout=600)
    assert got.returncode == 0, got.stderr[-5000:]
    sweep_id = read_all(pg_store, "")["sweeps"]["sweep_id"][0]

    def running():
        return [r for r in _shard_runs(prefect_server, sweep_id) if r.state.type.value == "RUNNING"]

    victim = _wait(running, 300, "a shard to start on the first worker", poll_s=0.25)[0]
    os.killpg(first.pid, signal.SIGKILL)  # the worker, its Prefect worker and the shard's process
    first.wait(timeout=30)
    engine = store.make_engine(pg_store)
    with engine.connect() as conn:
        stored = store.done_problem_ids(conn, as_cell(victim.parameters["cell"]).cell_id)
    engine.dispose()
    assert not stored & set(victim.parameters["problem_ids"]), "the shard finished before the kill: test raced"

    _start_worker(background, env, pool, "1")

    def others_done():
        runs = _shard_runs(prefect_server, sweep_id)
        return all(r.state.type.value == "COMPLETED" for r in runs if r.id != victim.id)

    _wait(others_done, 600, "the other shards to complete on the second worker")
    before = read_all(pg_store, sweep_id)
    missing = 15 - before["runs"].height
    assert missing == len(victim.parameters["problem_ids"])  # exactly the killed shard is missing

    again = ttscale("sweep", "submit", str(spec), "--pool", pool, "--wait", env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
    assert "1 shard runs queued" in again.stdout  # only the lost problems run again
    final = read_all(pg_store, sweep_id)
    assert final["sweeps"].filter(pl.col("sweep_id") == sweep_id)["status"].to_list() == ["done"]
    assert final["runs"].height == 15
    per_problem = final["candidates"].group_by("cell_id", "problem_id").agg(pl.len(), pl.col("idx").n_unique().alias("distinct"))
    assert per_problem.height == 15 and (per_problem["len"] == per_problem["distinct"]).all()
    cells = {r["cell_id"]: r for r in final["cells"].iter_rows(named=True)}
    n_of = per_problem.join(pl.DataFrame({"cell_id": list(cells), "n": [cells[c]["n"] for c in cells]}), on="cell_id")
    bon = [c for c, r in cells.items() if r["strategy"] == "best_of_n" and r["source_cell_id"] is None]
    assert (n_of.filter(pl.col("cell_id").is_in(bon))["len"] == 4).all()  # every candidate exactly once


def test_cancel_stops_queued_runs_and_marks_cells(prefect_server, tmp_path, pg_store, mlflow_uri):
    spec = small_spec(tmp_path, "cancel-team", shard_size=3)
    pool = f"pool-{uuid.uuid4().hex[:8]}"  # no worker serves it: every shard run stays queued
    env = _team_env(tmp_path, prefect_server, pg_store, mlflow_uri)
    got = ttscale("sweep", "submit", str(spec), "--pool", pool, env=env, timeout=600)
    assert got.returncode == 0 and "6 shard runs queued" in got.stdout, got.stderr[-3000:]
    sweep_id = read_all(pg_store, "")["sweeps"]["sweep_id"][0]
    assert {r.state.type.value for r in _shard_runs(prefect_server, sweep_id)} == {"SCHEDULED"}

    got = ttscale("sweep", "cancel", sweep_id, env=env, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    assert "cancelled 6 flow runs" in got.stdout and "4 cells marked cancelled" in got.stdout
    assert {r.state.type.value for r in _shard_runs(prefect_server, sweep_id)} == {"CANCELLED"}
    data = read_all(pg_store, sweep_id)
    assert set(data["cells"]["status"]) == {"cancelled"} and data["sweeps"]["status"].to_list() == ["cancelled"]
    assert data["runs"].height == 0
    status = ttscale("sweep", "status", sweep_id, env=env)
    assert "cells: 0 done, 0 running, 0 pending, 0 failed, 4 cancelled; problems 0/15" in status.stdout
