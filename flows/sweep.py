"""A planned sweep: run its shards, settle statuses from the store, track in MLflow.

The CLI plans and registers the sweep (`sweep_state.plan_remaining`, `register_plan`) and hands
this flow the shards left. Local mode (`pool=None`): shards run here, one after another, as
`shard_task`s (the policy is loaded once per process); a shard the store refused (StoreError:
disk full, read-only, unreachable past its retries) ends the sweep with that error instead of
computing the rest for nothing. Problems another run is computing meanwhile (another
`ttscale sweep run` of the same spec, a `ttscale run` of one of its cells) are deferred: once
every shard had its turn, the flow comes back to them, waits until that run stored them or
its claims lapsed, and runs only what is left, so each problem is computed once.

Team mode (`pool`): the shard flow is deployed on the process work pool and each shard
becomes a deployment run that a `ttscale worker` picks up (waiting for deferred problems); with
`wait` this flow waits for them, then settles and tracks; without, it returns once they are
queued (each shard marks its cell done and settles the sweep; `ttscale sweep sync-mlflow` tracks).

Settings (where the store and MLflow are) reach the tasks as arguments, never as flow
parameters: Prefect records those, and a store URL may carry a password.
"""

from __future__ import annotations

from prefect import flow, tags, task
from prefect.cache_policies import NO_CACHE

from flows import team
from flows.shard import mark_failed, shard_task
from ttscale import store, sweep_state, tracking
from ttscale.errors import StoreError
from ttscale.runner import ShardProgress
from ttscale.settings import Settings


@task(name="settle", cache_policy=NO_CACHE, persist_result=False)
def settle(sweep_id: str, final: bool, settings: Settings) -> dict:
    with store.opened(settings.database_url) as engine:
        progress = sweep_state.settle_sweep(engine, sweep_id, final=final)
    return {"status": progress.status, "cells": {s: progress.count(s) for s in ("done", "failed", "cancelled", "running", "pending")}}


@task(name="track-mlflow", cache_policy=NO_CACHE, persist_result=False)
def track(sweep_id: str, settings: Settings) -> dict:
    with store.opened(settings.database_url) as engine:
        report = tracking.track_sweep(engine, sweep_id, settings.mlflow_tracking_uri, store_url=settings.database_url)
    return {"complete": report.complete, "run_id": report.parent_run_id, "error": report.error}


def _cancelled(sweep_id: str, settings: Settings) -> bool:
    with store.opened(settings.database_url) as engine:
        return sweep_state.is_cancelled(engine, sweep_id)


def _attach(sweep_id: str, n_shards: int, settings: Settings) -> str | None:
    flow_run_id = team.current_flow_run_id()
    if flow_run_id:
        with store.opened(settings.database_url) as engine:
            sweep_state.attach_flow_run(engine, sweep_id, flow_run_id, n_shards)
    return flow_run_id


def _run_local(shard: dict, retries: int, settings: Settings, wait: bool, progress: ShardProgress | None) -> dict:
    """One shard as a task of the local sweep flow: its report, or {} when it failed (its cell
    then marked failed; a StoreError ends the sweep)."""
    state = shard_task.with_options(retries=retries)(shard, settings, wait, progress, return_state=True)
    if state.is_completed():
        return state.result()
    mark_failed(shard["cell"], str(state.message or state.name), settings)
    error = state.result(raise_on_failure=False)
    if isinstance(error, StoreError):
        raise error  # the store refuses writes (disk full, read-only, down): so would every later shard
    return {}


def run_sweep(
    sweep_id: str, shards: list[dict], retries: int, settings: Settings, *, pool: str | None = None, wait: bool = True,
    progress: ShardProgress | None = None,
) -> dict:
    """Run the sweep flow in this process, its flow run tagged with the sweep (for `cancel`);
    returns its id, status, the shards' outcome and tracking state. `progress` hears every
    local shard's stages (like `settings`, it reaches the tasks by closure, never as a flow
    parameter: Prefect records those)."""

    @flow(name="ttscale-sweep", persist_result=False)
    def sweep_flow(sweep_id: str, shards: list[dict], retries: int = 2, pool: str | None = None, wait: bool = True) -> dict:
        team.configure_run_logging()
        summary: dict = {"sweep_id": sweep_id, "n_shards": len(shards), "flow_run_id": _attach(sweep_id, len(shards), settings)}
        if pool is None:
            deferred = []
            for shard in shards:  # first what no other run is computing...
                if _cancelled(sweep_id, settings):
                    break
                report = _run_local(shard, retries, settings, wait=False, progress=progress)
                if report.get("deferred"):
                    deferred.append({**shard, "problem_ids": report["deferred"]})
            for shard in deferred:  # ...then what others were, once they stored it or let it go
                if _cancelled(sweep_id, settings):
                    break
                _run_local(shard, retries, settings, wait=True, progress=progress)
            finished = True
        else:
            team.ensure_pool(pool)
            deployment = team.deploy_shard_flow(pool)
            run_ids = team.submit_shard_runs(deployment, shards, retries, sweep_id)
            summary["flow_run_ids"] = run_ids
            finished = bool(wait)
            if wait:
                summary["run_states"] = team.wait_for_runs(run_ids)
        summary |= settle(sweep_id, finished, settings)
        if finished:
            summary["tracking"] = track(sweep_id, settings)
        return summary

    with tags("ttscale", team.sweep_tag(sweep_id)):
        return sweep_flow(sweep_id, shards, retries=retries, pool=pool, wait=wait)
