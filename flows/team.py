"""Prefect API calls of team mode: work pools, the shard deployment, submitting and waiting for
shard runs, cancelling a sweep's runs, per-GPU-slot concurrency limits, run logging.

Every flow run of a sweep carries the tags `ttscale` and `ttscale.sweep:<sweep id>` (shards also
`ttscale.cell:<cell id>`), which is how `cancel_sweep_runs` finds them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ttscale.spec import as_cell

SHARD_ENTRYPOINT = "flows/shard.py:shard_flow"
SHARD_FLOW_NAME = "ttscale-shard"
SLOT_ENV = "TTSCALE_GPU_SLOT"
"""Set by `ttscale worker` for each worker process: the GPU slot (`<host>-<gpu>`) it serves."""
ACTIVE_STATES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")


def source_dir() -> Path:
    """The checkout holding `flows/` (what a process worker runs the shard flow from)."""
    return Path(__file__).resolve().parent.parent


def sweep_tag(sweep_id: str) -> str:
    return f"ttscale.sweep:{sweep_id}"


def cell_tag(cell_id: str) -> str:
    return f"ttscale.cell:{cell_id}"


def slot_limit_name(slot: str) -> str:
    return f"ttscale-gpu-{slot}"


def configure_run_logging() -> None:
    """ttscale's INFO lines reach the run logs (PREFECT_LOGGING_EXTRA_LOGGERS=ttscale sends
    them there; a worker's flow-run process would otherwise filter them at WARNING)."""
    root = logging.getLogger("ttscale")
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


@contextlib.contextmanager
def gpu_slot() -> Iterator[None]:
    """Hold this worker's GPU slot (a global concurrency limit of 1) while a shard runs."""
    slot = os.environ.get(SLOT_ENV)
    if not slot:
        yield
        return
    from prefect.concurrency.sync import concurrency

    # A slot held by a killed process frees when its lease lapses (renewed while the shard runs).
    with concurrency(slot_limit_name(slot), occupy=1, strict=True, lease_duration=60):
        yield


def api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def check_api() -> str:
    """The Prefect API URL, checked healthy; RuntimeError (one line) otherwise."""
    from prefect.client.orchestration import get_client

    url = api_url()
    if not url:
        raise RuntimeError("PREFECT_API_URL is not set: team mode needs a Prefect server")
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise RuntimeError(f"Prefect API {url} unreachable: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    return url


def ensure_pool(pool: str) -> None:
    """Create a process work pool named `pool` unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))


def ensure_slot_limit(slot: str) -> str:
    """A global concurrency limit of 1 for a GPU slot (created if missing); returns its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = slot_limit_name(slot)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    return name


def deploy_shard_flow(pool: str) -> str:
    """Create or update the shard flow's deployment on `pool`; returns `flow/deployment`."""
    from prefect import flow

    name = f"shard-{pool}"
    deployment = flow.from_source(source=str(source_dir()), entrypoint=SHARD_ENTRYPOINT).to_deployment(
        name=name, work_pool_name=pool, tags=["ttscale"], description="One ttscale shard (ttscale.runner.run_shard)"
    )
    deployment.apply()
    return f"{SHARD_FLOW_NAME}/{name}"


def submit_shard_runs(deployment: str, shards: Sequence[dict], retries: int, sweep_id: str) -> list[str]:
    """One deployment run per shard (linked to the calling flow run as subflows); returns their ids."""
    from prefect.deployments import run_deployment

    ids = []
    for shard in shards:
        cell_id = _cell_id(shard["cell"])
        run = run_deployment(
            deployment,
            parameters={**shard, "retries": retries},
            timeout=0,
            tags=["ttscale", sweep_tag(sweep_id), cell_tag(cell_id)],
            flow_run_name=f"shard-{cell_id}-{shard.get('shard_index', 0)}",
        )
        ids.append(str(run.id))
    return ids


def _cell_id(cell: dict) -> str:
    return as_cell(cell).cell_id


def wait_for_runs(run_ids: Sequence[str], poll_s: float = 2.0, timeout_s: float | None = None) -> dict[str, str]:
    """Poll until every run is in a final state (or the timeout passes); run id → state name."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    states: dict[str, str] = {}
    pending = set(run_ids)
    with get_client(sync_client=True) as client:
        while pending:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(r) for r in pending])))
            for run in runs:
                if run.state is not None and run.state.is_final():
                    states[str(run.id)] = run.state.name
                    pending.discard(str(run.id))
            if pending and deadline is not None and time.monotonic() > deadline:
                break
            if pending:
                time.sleep(poll_s)
    return states


def sweep_runs(sweep_id: str, active_only: bool = True) -> list:
    """The flow runs of a sweep (shard runs and the sweep flow run itself)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
    from prefect.client.schemas.objects import StateType

    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in ACTIVE_STATES])) if active_only else None
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[sweep_tag(sweep_id)]), state=state))


def cancel_sweep_runs(sweep_id: str) -> int:
    """Cancel the sweep's queued and running flow runs: queued ones at once, running ones via
    `Cancelling` (their worker stops the process). Returns how many were cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Cancelling

    n = 0
    runs = sweep_runs(sweep_id)
    with get_client(sync_client=True) as client:
        for run in runs:
            if run.state is None or run.state.is_final():
                continue
            running = run.state.type.value in ("RUNNING", "CANCELLING")
            state = Cancelling(message="ttscale sweep cancel") if running else Cancelled(message="ttscale sweep cancel")
            client.set_flow_run_state(run.id, state, force=True)
            n += 1
    return n


def current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.get_id()
