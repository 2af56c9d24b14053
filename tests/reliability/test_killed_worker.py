"""Fault: the process running a sweep is killed with SIGKILL in the middle of a shard.

`ttscale sweep run` (local mode: it runs every shard itself, with its temporary Prefect
server) is started on the scripted model, slowed so a shard lasts seconds; once the store
holds a shard and another is computing, the whole process group gets SIGKILL. The killed
shard's transaction never committed, so none of its problems are stored (on SQLite the file
passes `PRAGMA integrity_check`); its claims on them stay in the store. Running the same
command again resumes at once — the claims' process is gone from this host, so they do not
hold it up until they lapse: only problems not stored run, nothing stored before the kill is
computed again, and the store ends with every problem, candidate, node and verdict exactly
once and the sweep done.

(Team mode's version — a `ttscale worker` killed mid-shard, the sweep resubmitted — is in
tests/integration/test_orchestration_team.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import TTSCALE
from tests.orchestration import env_for, migrated_store, read_all, small_spec, sqlite_store
from tests.plugins.prefect_mlflow import no_prefect_env
from tests.reliability.faults import (
    assert_stored_exactly_once,
    claims,
    computed_since,
    fault_env,
    one_cell_run_args,
    sqlite_integrity,
    stored_keys,
    sweep_id_of,
    wait_mid_shard,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sweep_run_killed_mid_shard_resumes_with_every_candidate_once(engine, request, tmp_path: Path, mlflow_uri, background):
    url = sqlite_store(tmp_path) if engine == "sqlite" else migrated_store(request.getfixturevalue("fresh_postgres_db"))
    spec = small_spec(tmp_path, f"kill-{engine}")
    trace = tmp_path / "trace.jsonl"
    # The CLI's own Prefect home under TTSCALE_HOME: the kill also takes down its temporary
    # server, which must not be the one other tests share.
    env = fault_env(no_prefect_env(env_for(tmp_path / "home", url, mlflow_uri)), trace=trace, delay_s=1.5)

    first = background.start([TTSCALE, "sweep", "run", str(spec)], env, "sweep-run-killed")
    shard = wait_mid_shard(url, trace, first, min_stored=3, log=background.logs / "sweep-run-killed.log")
    stored_before = stored_keys(url)
    os.killpg(first.pid, signal.SIGKILL)  # the CLI, its temporary Prefect server, everything in its group
    first.wait(timeout=60)
    killed_at = time.time()

    stored_after = stored_keys(url)
    assert stored_after == stored_before, "something was written after SIGKILL"
    assert not shard.keys & stored_after, "the killed shard was stored: the kill came too late"
    assert 3 <= len(stored_after) < 15
    assert {claims(url).get(key) for key in shard.keys} == {first.pid}  # the dead run's claims remain
    if engine == "sqlite":
        assert sqlite_integrity(Path(url.removeprefix("sqlite:///"))) == "ok"

    again = subprocess.run([TTSCALE, "sweep", "run", str(spec)], env=env, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
    assert "shard deferred" not in again.stderr  # the dead run's claims held nothing up
    assert claims(url) == {}
    assert "tracking: complete" in again.stdout

    assert_stored_exactly_once(url, sweep_id_of(url, f"kill-{engine}"))
    recomputed = computed_since(trace, killed_at)
    assert len(recomputed) == len(set(recomputed)), "a problem ran twice after the resubmission"
    assert not set(recomputed) & stored_before, "problems stored before the kill ran again"
    assert shard.keys <= set(recomputed)  # the lost shard's problems ran again
    assert set(recomputed) | stored_before == stored_keys(url)
    if engine == "sqlite":
        assert sqlite_integrity(Path(url.removeprefix("sqlite:///"))) == "ok"


def test_ttscale_run_killed_mid_shard_resumes_like_a_one_cell_sweep(tmp_path: Path, mlflow_uri, background):
    """`ttscale run` is a one-cell sweep: killed mid-cell, the same command resumes, says how many
    problems it still runs, and stores every problem once."""
    url = sqlite_store(tmp_path)
    trace = tmp_path / "trace.jsonl"
    env = fault_env(no_prefect_env(env_for(tmp_path / "home", url, mlflow_uri)), trace=trace, delay_s=1.5)
    command = [TTSCALE, *one_cell_run_args()]

    first = background.start(command, env, "run-killed")
    shard = wait_mid_shard(url, trace, first, min_stored=3, log=background.logs / "run-killed.log")
    stored_before = stored_keys(url)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    killed_at = time.time()
    assert stored_keys(url) == stored_before and not shard.keys & stored_before
    assert {claims(url).get(key) for key in shard.keys} == {first.pid}
    assert sqlite_integrity(Path(url.removeprefix("sqlite:///"))) == "ok"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
    assert "shard deferred" not in again.stderr
    left = 15 - len(stored_before)
    assert f"with {left} problems to run" in again.stdout  # the sweep's plan line: it resumes
    assert "tracking: complete" in again.stdout
    sweeps = read_all(url, "")["sweeps"]
    assert sweeps.height == 1 and sweeps["name"][0].startswith("run ")  # one sweep, of one cell, both times
    assert_stored_exactly_once(url, sweeps["sweep_id"][0])
    recomputed = computed_since(trace, killed_at)
    assert len(recomputed) == len(set(recomputed)) == left
    assert not set(recomputed) & stored_before
