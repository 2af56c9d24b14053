"""One shard: the problems of one cell, run by the library and stored in one transaction.

`shard_task` is what the local sweep flow calls for each shard; `shard_flow` wraps it as the
unit a worker runs in team mode (a deployment on a process work pool). The task retries as
the spec says (`retries`); a shard whose retries are spent marks its cell failed. The `gpu`
tag lets an operator cap GPU tasks cluster-wide (`prefect concurrency-limit create gpu N`);
under `ttscale worker`, each GPU slot's own concurrency limit holds one shard at a time.
The policy is loaded once per process (`ttscale.backends.load_policy` caches the engine).
"""

from __future__ import annotations

import os
import socket

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.team import SLOT_ENV, configure_run_logging, gpu_slot

RETRY_DELAYS_S = [2, 10, 30]


@task(name="run-shard", tags=["gpu"], cache_policy=NO_CACHE, persist_result=False, retry_delay_seconds=RETRY_DELAYS_S)
def shard_task(cell: dict, problem_ids: list[str], sweep_id: str | None = None) -> dict:
    from ttscale import execution
    from ttscale.settings import Settings

    settings = Settings.from_env()
    engine = execution.open_store(settings)
    try:
        with gpu_slot():
            report = execution.run_stored_shard(
                engine, cell, problem_ids, settings, sweep_id=sweep_id, prefect_flow_run_id=flow_run.get_id()
            )
        return report.as_dict()
    finally:
        engine.dispose()


def _mark_cell_failed(flow_obj, run, state) -> None:
    from ttscale import execution
    from ttscale.settings import Settings

    engine = execution.open_store(Settings.from_env())
    try:
        execution.mark_cell_failed(engine, run.parameters["cell"], str(state.message or state.name))
    finally:
        engine.dispose()


@flow(name="ttscale-shard", on_failure=[_mark_cell_failed], persist_result=False)
def shard_flow(cell: dict, problem_ids: list[str], sweep_id: str | None = None, retries: int = 2, shard_index: int = 0) -> dict:
    """Run and store one shard of `cell` (its `CellSpec` as JSON); returns a small summary."""
    configure_run_logging()
    from ttscale.execution import as_cell

    get_run_logger().info(
        "shard cell=%s index=%d problems=%d host=%s slot=%s",
        as_cell(cell).cell_id, shard_index, len(problem_ids), socket.gethostname(), os.environ.get(SLOT_ENV, "-"),
    )  # fmt: skip
    try:
        return shard_task.with_options(retries=retries)(cell, problem_ids, sweep_id)
    finally:
        from ttscale.execution import release_policies

        release_policies()  # this process runs one shard; its engine must not keep it alive
