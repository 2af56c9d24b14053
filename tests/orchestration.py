"""Helpers shared by the orchestration tests: small sweep specs, stores, MLflow reads."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

# 2 strategies x 2 budgets x 5 arith problems on the scripted policy: best_of_n at n=2 is served
# by n=4, beam search runs at both budgets; shards of 3 problems (two per running cell).
SMALL_SPEC = """\
name: {name}
models: [scripted]
verifiers: [arithmetic]
strategies:
  - name: best_of_n
  - name: beam_search
    beam_width: 2
    n_iterations: 3
budgets: [2, 4]
datasets:
  - name: arith
    limit: 5
seeds: [0]
shard_size: {shard_size}
retries: 1
"""


def small_spec(tmp_path: Path, name: str, shard_size: int = 3) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SMALL_SPEC.format(name=name, shard_size=shard_size), encoding="utf-8")
    return path


def migrated_store(url: str) -> str:
    from tests.plugins.postgres import migrated

    return migrated(url)


def sqlite_store(tmp_path: Path, name: str = "ttscale") -> str:
    return migrated_store(f"sqlite:///{(tmp_path / 'store' / f'{name}.db').absolute()}")


def env_for(home: Path, store_url: str, mlflow_uri: str, **extra: str) -> dict[str, str]:
    """The environment of a `ttscale` subprocess or an in-process flow: where everything is."""
    return {
        **os.environ,
        "TTSCALE_HOME": str(home),
        "TTSCALE_DATABASE_URL": store_url,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        **extra,
    }


def read_all(store_url: str, sweep_id: str) -> dict[str, pl.DataFrame]:
    """Sweeps, cells and everything stored for the sweep's generating cells."""
    from ttscale import store

    engine = store.make_engine(store_url)
    try:
        with engine.connect() as conn:
            sweeps = store.read_sweeps(conn)
            cells = store.read_cells(conn, sweep_id)
            ids = cells["cell_id"].to_list()
            return {
                "sweeps": sweeps,
                "cells": cells,
                "candidates": store.read_candidates(conn, ids, with_text=True),
                "verdicts": store.read_verdicts(conn, ids),
                "runs": store.read_problem_runs(conn, ids),
            }
    finally:
        engine.dispose()


def results_view(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    """What must agree between two runs of one spec: candidates, verdicts and token counts
    (no ids of runs, timings or timestamps)."""
    cands = frames["candidates"].select(
        "cell_id", "problem_id", "idx", "text", "answer", "correct", "score", "step_scores", "n_generated_tokens", "finish_reason"
    )
    runs = frames["runs"].select("cell_id", "problem_id", "n_prompt_tokens", "n_generated_tokens", "n_verifier_tokens", "n_candidates", "n_nodes")
    return {
        "candidates": cands.sort("cell_id", "problem_id", "idx").rows(),
        "verdicts": frames["verdicts"].sort("cell_id", "problem_id", "method", "n").rows(),
        "runs": runs.sort("cell_id", "problem_id").rows(),
    }


def expected_accuracy(verdicts: pl.DataFrame, cell_id: str, method: str, n: int) -> float:
    rows = verdicts.filter((pl.col("cell_id") == cell_id) & (pl.col("method") == method) & (pl.col("n") == n))
    assert rows.height > 0, (cell_id, method, n)
    return rows["correct"].cast(pl.Float64).mean()


def mlflow_runs(uri: str, experiment: str) -> tuple[object, list]:
    """(parent run, nested runs) of the one sweep logged under `experiment`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ttscale.kind") == "sweep"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], nested


def run_spec(spec_path: Path, settings, created_by: str = "test", **flow_options) -> dict:
    """What `ttscale sweep run` does, in this process and without printing: plan the spec against
    the store, register it, run the sweep flow on the shards left. Returns the flow's summary."""
    from flows.sweep import run_sweep
    from ttscale import store, sweep_state
    from ttscale.planning import check_sweep
    from ttscale.spec import read_sweep_file

    spec, text = read_sweep_file(str(spec_path))
    with store.opened(settings.database_url) as engine:
        plan = sweep_state.plan_remaining(engine, spec, check_sweep(spec, settings))
        sweep_id = sweep_state.register_plan(engine, plan, text, created_by)
    return run_sweep(sweep_id, sweep_state.shard_params(plan, sweep_id), spec.retries, settings, **flow_options)
