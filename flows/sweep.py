"""A whole sweep: register it and its cells, plan the shards left (the store says what is
done), run them, settle statuses from the store, track in MLflow.

Local mode (`pool=None`): shards run here, one after another, as `shard_task`s (the policy is
loaded once per process); a shard the store refused (StoreError: disk full, read-only,
unreachable past its retries) ends the sweep with that error instead of computing the rest
for nothing. Team mode (`pool`): the shard flow is deployed on the process work
pool and each shard becomes a deployment run that a `ttscale worker` picks up; with `wait`
this flow waits for them, then settles and tracks; without, it returns once they are queued
(each shard marks its cell done and settles the sweep; `ttscale sweep sync-mlflow` tracks).
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows import team
from flows.shard import shard_task
from ttscale.errors import StoreError


@task(name="register-and-plan", cache_policy=NO_CACHE, persist_result=False)
def register_and_plan(spec_text: str, source: str, created_by: str) -> dict:
    from ttscale import execution
    from ttscale.settings import Settings

    settings = Settings.from_env()
    spec = execution.parse_spec_text(spec_text, source)
    engine = execution.open_store(settings)
    try:
        plan = execution.build_plan(spec, settings, engine)
        sweep_id = execution.register_plan(engine, plan, spec_text, created_by, prefect_flow_run_id=team.current_flow_run_id())
        return {"sweep_id": sweep_id, "retries": spec.retries, "shards": execution.shard_params(plan, sweep_id)}
    finally:
        engine.dispose()


@task(name="settle", cache_policy=NO_CACHE, persist_result=False)
def settle(sweep_id: str, final: bool) -> dict:
    from ttscale import execution
    from ttscale.settings import Settings

    engine = execution.open_store(Settings.from_env())
    try:
        progress = execution.settle_sweep(engine, sweep_id, final=final)
        return {"status": progress.status, "cells": {s: progress.count(s) for s in ("done", "failed", "cancelled", "running", "pending")}}
    finally:
        engine.dispose()


@task(name="mark-cell-failed", cache_policy=NO_CACHE, persist_result=False)
def mark_failed(cell: dict, reason: str) -> None:
    from ttscale import execution
    from ttscale.settings import Settings

    engine = execution.open_store(Settings.from_env())
    try:
        execution.mark_cell_failed(engine, cell, reason)
    finally:
        engine.dispose()


@task(name="track-mlflow", cache_policy=NO_CACHE, persist_result=False)
def track(sweep_id: str) -> dict:
    from ttscale import execution, tracking
    from ttscale.settings import Settings
    from ttscale.store import redact_url

    settings = Settings.from_env()
    engine = execution.open_store(settings)
    try:
        report = tracking.track_sweep(engine, sweep_id, settings.mlflow_tracking_uri, store_url=redact_url(settings.database_url))
        return {"complete": report.complete, "run_id": report.parent_run_id, "error": report.error}
    finally:
        engine.dispose()


def _cancelled(sweep_id: str) -> bool:
    from ttscale import execution
    from ttscale.settings import Settings

    engine = execution.open_store(Settings.from_env())
    try:
        return execution.is_cancelled(engine, sweep_id)
    finally:
        engine.dispose()


@flow(name="ttscale-sweep", persist_result=False)
def sweep_flow(spec_text: str, source: str = "spec", created_by: str = "", pool: str | None = None, wait: bool = True) -> dict:
    """Run the sweep whose YAML is `spec_text`; returns its id, status and tracking state."""
    team.configure_run_logging()
    planned = register_and_plan(spec_text, source, created_by)
    sweep_id, shards, retries = planned["sweep_id"], planned["shards"], planned["retries"]
    summary: dict = {"sweep_id": sweep_id, "n_shards": len(shards), "flow_run_id": team.current_flow_run_id()}
    if pool is None:
        for shard in shards:
            if _cancelled(sweep_id):
                break
            state = shard_task.with_options(retries=retries)(shard["cell"], shard["problem_ids"], sweep_id, return_state=True)
            if not state.is_completed():
                mark_failed(shard["cell"], str(state.message or state.name))
                error = state.result(raise_on_failure=False)
                if isinstance(error, StoreError):
                    raise error  # the store refuses writes (disk full, read-only, down): so would every later shard
        finished = True
    else:
        team.ensure_pool(pool)
        deployment = team.deploy_shard_flow(pool)
        run_ids = team.submit_shard_runs(deployment, shards, retries, sweep_id)
        summary["flow_run_ids"] = run_ids
        finished = bool(wait)
        if wait:
            summary["run_states"] = team.wait_for_runs(run_ids)
    summary |= settle(sweep_id, final=finished)
    if finished:
        summary["tracking"] = track(sweep_id)
    return summary


def run_sweep(spec_text: str, *, source: str, created_by: str, sweep_id: str, pool: str | None = None, wait: bool = True) -> dict:
    """Call `sweep_flow` in this process, its flow run tagged with the sweep (for `cancel`)."""
    from prefect import tags

    with tags("ttscale", team.sweep_tag(sweep_id)):
        return sweep_flow(spec_text, source=source, created_by=created_by, pool=pool, wait=wait)
