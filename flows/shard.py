"""One shard: the problems of one cell, run by `ttscale.runner.run_shard` and stored in one
transaction.

`shard_task` is what the local sweep flow calls for each shard; `shard_flow` wraps it as the
unit a worker runs in team mode (a deployment on a process work pool, with the worker host's
own settings). The task retries as the spec says (`retries`); a shard whose retries are spent
marks its cell failed. The `gpu` tag lets an operator cap GPU tasks cluster-wide (`prefect
concurrency-limit create gpu N`); under `ttscale worker`, each GPU slot's own concurrency limit
holds one shard at a time. The policy is loaded once per process.

Problems another run is computing (claimed in the store) are not computed twice: with `wait`
the task waits for that run to store them (or for its claims to lapse) and runs what is left;
without, it returns them as `deferred` for the caller to come back to (the local sweep does).
"""

from __future__ import annotations

import os
import socket

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.team import SLOT_ENV, configure_run_logging, gpu_slot
from ttscale import runner, store, sweep_state
from ttscale.settings import Settings
from ttscale.spec import as_cell

RETRY_DELAYS_S = [2, 10, 30]


@task(name="run-shard", tags=["gpu"], cache_policy=NO_CACHE, persist_result=False, retry_delay_seconds=RETRY_DELAYS_S)
def shard_task(shard: dict, settings: Settings, wait: bool = True, progress: runner.ShardProgress | None = None) -> dict:
    """`shard` as `sweep_state.shard_params` gives it; `settings` say where the store is (task
    arguments are not recorded by Prefect, so a password in them stays in this process);
    `progress`, in local mode, is the CLI's display (`runner.ShardEvent`s)."""
    with store.opened(settings.database_url) as engine, gpu_slot():
        report = runner.run_shard(
            engine, shard["cell"], shard["problem_ids"], settings, sweep_id=shard.get("sweep_id"), flow_run_id=flow_run.get_id(),
            wait=wait, progress=progress,
        )
    return report.as_dict()


@task(name="mark-cell-failed", cache_policy=NO_CACHE, persist_result=False)
def mark_failed(cell: dict, reason: str, settings: Settings) -> None:
    with store.opened(settings.database_url) as engine:
        sweep_state.mark_cell_failed(engine, as_cell(cell).cell_id, reason)


def _mark_cell_failed(flow_obj, run, state) -> None:  # noqa: ANN001 - Prefect's on_failure hook
    with store.opened(Settings.from_env().database_url) as engine:
        sweep_state.mark_cell_failed(engine, as_cell(run.parameters["cell"]).cell_id, str(state.message or state.name))


@flow(name="ttscale-shard", on_failure=[_mark_cell_failed], persist_result=False)
def shard_flow(cell: dict, problem_ids: list[str], sweep_id: str | None = None, retries: int = 2, shard_index: int = 0) -> dict:
    """Run and store one shard of `cell` (its `CellSpec` as JSON) with this host's settings."""
    configure_run_logging()
    get_run_logger().info(
        "shard cell=%s index=%d problems=%d host=%s slot=%s",
        as_cell(cell).cell_id, shard_index, len(problem_ids), socket.gethostname(), os.environ.get(SLOT_ENV, "-"),
    )  # fmt: skip
    shard = {"cell": cell, "problem_ids": problem_ids, "sweep_id": sweep_id, "shard_index": shard_index}
    try:
        return shard_task.with_options(retries=retries)(shard, Settings.from_env())
    finally:
        runner.release_policies()  # this process runs one shard; its engine must not keep it alive
