"""Local mode: `ttscale sweep run` through its real entry point, and the sweep flow in-process
against Prefect's test harness (logs, MLflow down, resume, cancel). Scripted policy: seconds."""

from __future__ import annotations

import subprocess
import time

import polars as pl
import pytest

from tests.cli import TTSCALE, ttscale
from tests.orchestration import env_for, expected_accuracy, mlflow_runs, read_all, run_spec, small_spec, sqlite_store
from tests.plugins.prefect_mlflow import no_prefect_env


def _cell_ids(cells: pl.DataFrame) -> dict[tuple[str, int], str]:
    return {(r["strategy"], r["n"]): r["cell_id"] for r in cells.iter_rows(named=True)}


def test_sweep_run_stores_every_cell_and_mlflow_matches_the_store(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    spec = small_spec(tmp_path, "local-cli")
    home = tmp_path / "home"
    url = sqlite_store(tmp_path)
    env = no_prefect_env(env_for(home, url, mlflow_uri))  # the CLI's own Prefect home under TTSCALE_HOME
    # Not tests.cli.ttscale: it would merge this process's (isolated) Prefect paths back in.
    got = subprocess.run([TTSCALE, "sweep", "run", str(spec)], env=env, capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    assert "tracking: complete" in got.stdout
    assert (home / "prefect" / "prefect.db").is_file()

    sweeps = read_all(url, "")["sweeps"]
    assert sweeps.height == 1
    sweep = sweeps.row(0, named=True)
    data = read_all(url, sweep["sweep_id"])
    cells, cands, verdicts, runs = data["cells"], data["candidates"], data["verdicts"], data["runs"]
    ids = _cell_ids(cells)
    assert sorted(ids) == [("beam_search", 2), ("beam_search", 4), ("best_of_n", 2), ("best_of_n", 4)]
    assert set(cells["status"]) == {"done"} and sweep["status"] == "done"
    # best_of_n at n=2 runs nothing: it is served by the n=4 cell.
    by_id = {r["cell_id"]: r for r in cells.iter_rows(named=True)}
    assert by_id[ids[("best_of_n", 2)]]["source_cell_id"] == ids[("best_of_n", 4)]
    assert by_id[ids[("best_of_n", 2)]]["n_problems_done"] == 0
    for key in [("best_of_n", 4), ("beam_search", 2), ("beam_search", 4)]:
        assert by_id[ids[key]]["source_cell_id"] is None and by_id[ids[key]]["n_problems_done"] == 5
    per_problem = cands.group_by("cell_id", "problem_id").len()
    assert per_problem.filter(pl.col("cell_id") == ids[("best_of_n", 4)])["len"].to_list() == [4] * 5
    assert per_problem.height == 15  # 3 running cells x 5 problems, each stored once

    parent, nested = mlflow_runs(mlflow_uri, "local-cli")
    assert sweep["mlflow_run_id"] == parent.info.run_id
    assert parent.data.tags["ttscale.sweep_id"] == sweep["sweep_id"]
    assert parent.data.tags["prefect.flow_run_id"] == sweep["prefect_flow_run_id"] and sweep["prefect_flow_run_id"]
    assert parent.data.params["budgets"] == "[2, 4]" and parent.data.params["spec_hash"] == sweep["spec_hash"]
    assert len(nested) == 4
    client = MlflowClient(tracking_uri=mlflow_uri)
    for run in nested:
        cell = by_id[run.data.tags["ttscale.cell_id"]]
        assert cell["mlflow_run_id"] == run.info.run_id
        assert run.data.params["model"] == "scripted" and run.data.params["n"] == str(cell["n"])
        assert run.data.params["strategy"] == cell["strategy"] and run.data.params["code_version"] == cell["code_version"]
        gen = cell["source_cell_id"] or cell["cell_id"]
        for method, key in [("naive", "accuracy_naive"), ("weighted", "accuracy_weighted"), ("majority", "accuracy_majority"), ("pass", "pass_at_n")]:
            assert run.data.metrics[key] == pytest.approx(expected_accuracy(verdicts, gen, method, cell["n"])), (cell["cell_id"], key)
        if cell["source_cell_id"] is None:
            assert run.data.metrics["n_generated_tokens"] == cell["n_generated_tokens"]
            assert run.data.metrics["total_flops"] == pytest.approx(cell["policy_flops"] + cell["verifier_flops"])
            mine = runs.filter(pl.col("cell_id") == cell["cell_id"])
            assert run.data.metrics["wall_time_s"] == pytest.approx(mine["elapsed_s"].sum())
            assert run.data.metrics["problems_per_s"] == pytest.approx(5 / mine["elapsed_s"].sum())
        else:
            assert run.data.tags["ttscale.source_cell_id"] == cell["source_cell_id"]
            source = by_id[cell["source_cell_id"]]
            assert run.data.metrics["n_generated_tokens"] == pytest.approx(source["n_generated_tokens"] * cell["n"] / source["n"])
    bon4 = next(r for r in nested if r.data.tags["ttscale.cell_id"] == ids[("best_of_n", 4)])
    history = client.get_metric_history(bon4.info.run_id, "accuracy_naive")
    assert sorted(m.step for m in history) == [1, 2, 4]  # every stored budget of a prefix strategy
    artifacts = {a.path for a in client.list_artifacts(bon4.info.run_id, "results")}
    assert artifacts == {"results/verdicts.parquet", "results/problem_runs.parquet", "results/candidates.parquet"}
    local = client.download_artifacts(bon4.info.run_id, "results/verdicts.parquet", str(tmp_path))
    assert pl.read_parquet(local).height == verdicts.filter(pl.col("cell_id") == ids[("best_of_n", 4)]).height
    chart = client.download_artifacts(parent.info.run_id, "frontier.png", str(tmp_path))
    with open(chart, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _in_process(monkeypatch, tmp_path, store_url: str, mlflow_uri: str) -> None:
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TTSCALE_DATABASE_URL", store_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)


def _logs(flow_run_id: str, want: str, timeout_s: float = 30) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        if any(want in log.message for log in logs) or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)


def test_library_log_lines_reach_the_prefect_run_logs(prefect_harness, monkeypatch, tmp_path, mlflow_down_uri):
    from ttscale.settings import Settings

    spec = small_spec(tmp_path, "logs")
    _in_process(monkeypatch, tmp_path, sqlite_store(tmp_path), mlflow_down_uri)
    summary = run_spec(spec, Settings.from_env())
    logs = _logs(summary["flow_run_id"], "shard end cell=")
    lines = [(log.name, log.message) for log in logs]
    assert any(name == "ttscale.runner" and msg.startswith("shard end cell=") for name, msg in lines), lines
    assert any(name == "ttscale.sweep_state" and msg.startswith("sweep started sweep=" + summary["sweep_id"]) for name, msg in lines)


def test_tracking_down_does_not_fail_the_sweep_and_sync_fills_it_in(prefect_harness, monkeypatch, tmp_path, mlflow_down_uri, mlflow_uri):
    from ttscale import store, tracking
    from ttscale.settings import Settings

    spec = small_spec(tmp_path, "mlflow-down")
    url = sqlite_store(tmp_path)
    _in_process(monkeypatch, tmp_path, url, mlflow_down_uri)
    summary = run_spec(spec, Settings.from_env())
    assert summary["status"] == "done"
    assert summary["tracking"]["complete"] is False and "unreachable" in summary["tracking"]["error"]
    data = read_all(url, summary["sweep_id"])
    assert data["sweeps"]["mlflow_run_id"].to_list() == [None]  # the store marks tracking incomplete
    assert set(data["cells"]["status"]) == {"done"} and data["runs"].height == 15

    env = env_for(tmp_path / "home", url, mlflow_uri)
    status = ttscale("sweep", "status", summary["sweep_id"][:8], env=env)
    assert status.returncode == 0 and f"tracking: incomplete (run `ttscale sweep sync-mlflow {summary['sweep_id']}`)" in status.stdout
    synced = ttscale("sweep", "sync-mlflow", "mlflow-down", env=env, timeout=300)
    assert synced.returncode == 0, synced.stderr[-3000:]
    after = read_all(url, summary["sweep_id"])
    parent, nested = mlflow_runs(mlflow_uri, "mlflow-down")
    assert after["sweeps"]["mlflow_run_id"].to_list() == [parent.info.run_id]
    assert len(nested) == 4
    assert sorted(after["cells"]["mlflow_run_id"].to_list()) == sorted(r.info.run_id for r in nested)
    for run in nested:
        cell = after["cells"].filter(pl.col("cell_id") == run.data.tags["ttscale.cell_id"]).row(0, named=True)
        gen = cell["source_cell_id"] or cell["cell_id"]
        assert run.data.metrics["accuracy_majority"] == pytest.approx(expected_accuracy(after["verdicts"], gen, "majority", cell["n"]))
    # A second pass updates the same runs instead of adding new ones.
    engine = store.make_engine(url)
    again = tracking.track_sweep(engine, summary["sweep_id"], mlflow_uri)
    engine.dispose()
    assert again.complete and again.parent_run_id == parent.info.run_id
    assert len(mlflow_runs(mlflow_uri, "mlflow-down")[1]) == 4


def _planned(monkeypatch, tmp_path, name: str, mlflow_uri: str):
    """A small spec planned in this process against a new store: (spec path, its text, url,
    settings, an engine on the store, the plan)."""
    from ttscale import store, sweep_state
    from ttscale.planning import check_sweep
    from ttscale.settings import Settings
    from ttscale.spec import read_sweep_file

    spec = small_spec(tmp_path, name)
    url = sqlite_store(tmp_path)
    _in_process(monkeypatch, tmp_path, url, mlflow_uri)
    settings = Settings.from_env()
    parsed, text = read_sweep_file(str(spec))
    engine = store.open_engine(settings.database_url)
    return spec, text, url, settings, engine, sweep_state.plan_remaining(engine, parsed, check_sweep(parsed, settings))


def test_resubmitted_sweep_skips_stored_problems(prefect_harness, monkeypatch, tmp_path, mlflow_down_uri):
    from ttscale import runner

    spec, _, url, settings, engine, plan = _planned(monkeypatch, tmp_path, "resume", mlflow_down_uri)
    beam4 = next(p.cell for p in plan.running_cells if p.cell.strategy.name == "beam_search" and p.cell.n == 4)
    first_two = list(plan.problem_ids[beam4.cell_id][:2])
    report = runner.run_shard(engine, beam4, first_two, settings)  # as if an earlier run stored them
    assert report.n_written == 2

    summary = run_spec(spec, settings)
    # 3 running cells x 5 problems in shards of 3, minus the 2 stored: 2+2+1 shards... of 13 problems.
    assert summary["n_shards"] == 5 and summary["status"] == "done"
    data = read_all(url, summary["sweep_id"])
    counts = data["candidates"].group_by("cell_id", "problem_id").agg(pl.len(), pl.col("idx").n_unique().alias("distinct"))
    assert counts.height == 15 and (counts["len"] == counts["distinct"]).all()
    assert data["runs"].height == 15

    again = run_spec(spec, settings)
    assert again["n_shards"] == 0 and again["sweep_id"] == summary["sweep_id"]
    assert read_all(url, summary["sweep_id"])["candidates"].height == data["candidates"].height
    engine.dispose()


def test_cancelled_cells_run_nothing_and_resubmission_resumes_them(prefect_harness, monkeypatch, tmp_path, mlflow_down_uri):
    from ttscale import runner, sweep_state

    spec, text, url, settings, engine, plan = _planned(monkeypatch, tmp_path, "cancel", mlflow_down_uri)
    sweep_id = sweep_state.register_plan(engine, plan, text, "test")
    got = ttscale("sweep", "cancel", sweep_id, env=env_for(tmp_path / "home", url, mlflow_down_uri))
    assert got.returncode == 0 and "4 cells marked cancelled" in got.stdout, got.stderr
    cell = plan.running_cells[0].cell
    report = runner.run_shard(engine, cell, list(plan.problem_ids[cell.cell_id]), settings, sweep_id=sweep_id)
    assert report.cancelled and report.n_written == 0
    assert read_all(url, sweep_id)["runs"].height == 0
    assert set(read_all(url, sweep_id)["cells"]["status"]) == {"cancelled"}

    summary = run_spec(spec, settings)
    assert summary["status"] == "done" and summary["cells"]["done"] == 4
    assert read_all(url, sweep_id)["runs"].height == 15
    engine.dispose()
