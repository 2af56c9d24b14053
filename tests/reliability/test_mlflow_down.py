"""Fault: the MLflow tracking server goes down while a sweep runs (or in the middle of the
tracking pass).

Tracking is a view of the store, never its source: the sweep completes and stores everything,
the store marks tracking incomplete (the sweep's `mlflow_run_id` stays NULL, `ttscale sweep
status` says so), and `ttscale sweep sync-mlflow SWEEP` fills MLflow in once the server is
back, finding any runs a cut-short pass created by their tags instead of adding new ones.
A real `mlflow server` on a loopback port, stopped and started again on the same port and
backend store.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from tests.cli import TTSCALE
from tests.orchestration import env_for, expected_accuracy, mlflow_runs, read_all, small_spec, sqlite_store
from tests.reliability.faults import assert_stored_exactly_once, fault_env, sweep_id_of, wait_mid_shard


def _assert_tracked(url: str, sweep_id: str, tracking_uri: str, experiment: str) -> None:
    """MLflow holds the sweep as stored: one parent run, one nested run per cell (no
    duplicates), the store's run ids, accuracy equal to the stored verdicts."""
    data = read_all(url, sweep_id)
    parent, nested = mlflow_runs(tracking_uri, experiment)
    assert data["sweeps"].filter(pl.col("sweep_id") == sweep_id)["mlflow_run_id"].to_list() == [parent.info.run_id]
    assert len(nested) == 4 and len({r.data.tags["ttscale.cell_id"] for r in nested}) == 4
    assert sorted(data["cells"]["mlflow_run_id"].to_list()) == sorted(r.info.run_id for r in nested)
    for run in nested:
        cell = data["cells"].filter(pl.col("cell_id") == run.data.tags["ttscale.cell_id"]).row(0, named=True)
        gen = cell["source_cell_id"] or cell["cell_id"]
        assert run.data.metrics["accuracy_weighted"] == pytest.approx(expected_accuracy(data["verdicts"], gen, "weighted", cell["n"]))


@pytest.mark.slow
def test_mlflow_server_down_mid_sweep_then_sync_fills_it_in(tmp_path: Path, background, servers):
    server = servers.mlflow()
    server.start()
    url = sqlite_store(tmp_path)
    spec = small_spec(tmp_path, "mlflow-outage")
    trace = tmp_path / "trace.jsonl"
    env = fault_env(env_for(tmp_path / "home", url, server.uri), trace=trace, delay_s=1.0)
    proc = background.start([TTSCALE, "sweep", "run", str(spec)], env, "sweep-run")

    wait_mid_shard(url, trace, proc, min_stored=1, log=background.logs / "sweep-run.log")
    server.stop(signal.SIGKILL)  # the server dies while the sweep runs
    proc.wait(timeout=1200)
    output = background.log(proc)
    assert proc.returncode == 0, output[-6000:]  # the sweep itself succeeded
    assert "MLflow tracking incomplete" in output and "unreachable" in output, output[-4000:]
    assert "tracking: incomplete (run `ttscale sweep sync-mlflow" in output

    sweep_id = sweep_id_of(url, "mlflow-outage")
    assert_stored_exactly_once(url, sweep_id)
    assert read_all(url, sweep_id)["sweeps"]["mlflow_run_id"].to_list() == [None]

    down = subprocess.run([TTSCALE, "sweep", "sync-mlflow", sweep_id], env=env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 1 and down.stderr.strip().splitlines()[-1].startswith(f"error: tracking of sweep {sweep_id} incomplete: MLflow server")

    server.start()  # back, same port and backend store
    synced = subprocess.run([TTSCALE, "sweep", "sync-mlflow", "mlflow-outage"], env=env, capture_output=True, text=True, timeout=600)
    assert synced.returncode == 0, synced.stdout[-3000:] + synced.stderr[-3000:]
    _assert_tracked(url, sweep_id, server.uri, "mlflow-outage")
    status = subprocess.run([TTSCALE, "sweep", "status", sweep_id], env=env, capture_output=True, text=True, timeout=300)
    assert "tracking: complete" in status.stdout


def _run_sweep_in_store(url: str, spec_path: Path, home: Path) -> str:
    """The sweep run shard by shard through the runner (what the flows call), no Prefect."""
    from ttscale import runner, store, sweep_state
    from ttscale.planning import check_sweep, plan_sweep
    from ttscale.settings import Settings
    from ttscale.spec import read_sweep_file

    settings = Settings.from_env({"TTSCALE_HOME": str(home), "TTSCALE_DATABASE_URL": url})
    spec, text = read_sweep_file(str(spec_path))
    with store.opened(settings.database_url) as engine:
        plan = sweep_state.plan_remaining(engine, spec, check_sweep(spec, settings))
        sweep_id = sweep_state.register_plan(engine, plan, text, "test")
        for shard in sweep_state.shard_params(plan, sweep_id):
            runner.run_shard(engine, shard["cell"], shard["problem_ids"], settings, sweep_id=sweep_id)
        assert sweep_state.settle_sweep(engine, sweep_id, final=True).status == "done"
        return sweep_id


@pytest.mark.slow
def test_mlflow_server_dying_mid_tracking_pass_costs_seconds_and_sync_adds_no_duplicates(tmp_path: Path, monkeypatch, servers):
    from ttscale import store, tracking

    for key in tracking.HTTP_RETRY_DEFAULTS:
        monkeypatch.delenv(key, raising=False)  # ttscale's defaults apply; restored afterwards
    url = sqlite_store(tmp_path)
    sweep_id = _run_sweep_in_store(url, small_spec(tmp_path, "mlflow-mid-pass"), tmp_path / "home")
    server = servers.mlflow()
    server.start()
    logged = []
    original_log = tracking._log

    def log_then_die(client, run_id, *args, **kwargs):
        logged.append(run_id)
        if len(logged) == 2:  # the parent and nothing else logged: the server dies now
            server.stop(signal.SIGKILL)
        return original_log(client, run_id, *args, **kwargs)

    monkeypatch.setattr(tracking, "_log", log_then_die)
    engine = store.make_engine(url)
    start = time.monotonic()
    report = tracking.track_sweep(engine, sweep_id, server.uri)
    elapsed = time.monotonic() - start
    assert not report.complete and report.error, report
    assert elapsed < 60, f"a dead server stalled tracking {elapsed:.0f} s"  # MLflow's own retries: ~4 min
    assert read_all(url, sweep_id)["sweeps"]["mlflow_run_id"].to_list() == [None]

    monkeypatch.setattr(tracking, "_log", original_log)
    server.start()
    again = tracking.track_sweep(engine, sweep_id, server.uri)
    assert again.complete, again
    engine.dispose()
    _assert_tracked(url, sweep_id, server.uri, "mlflow-mid-pass")
