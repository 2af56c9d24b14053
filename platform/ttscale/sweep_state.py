"""A sweep's state in the store: what is planned, registered, done, failed or cancelled.

The store, not Prefect, records what is done: a problem is done for a cell when its
`problem_runs` row exists. So a retried or resubmitted shard skips what is stored, and a
cell's status is settled from what the store holds (`settle_sweep`), whoever asks.

Statuses: a sweep and its cells start `pending`; a running cell is `running` from its first
shard and `done` once every problem is stored; a served cell (see `planning`) mirrors its
source cell; `failed` when a shard gave up after its retries, `cancelled` by
`ttscale sweep cancel`. Resubmitting a sweep puts failed and cancelled cells back to pending.

Every function here is one unit of store work, repeated whole while the store is unavailable
(`store.retrying`, docs/reliability.md): each reads, or writes idempotently, in connections
and transactions of its own.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar


from ttscale.store import Engine
from ttscale import store
from ttscale.planning import SweepPlan, expand_cells, plan_sweep
from ttscale.spec import SweepSpec

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "cancelled"})
T = TypeVar("T")


def _retried(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(engine, ...)` repeated whole while the store is unavailable."""

    @functools.wraps(fn)
    def wrapper(engine: Engine, *args: Any, **kwargs: Any) -> T:
        what = fn.__name__.strip("_").replace("_", " ")
        return store.retrying(engine, lambda: fn(engine, *args, **kwargs), what=what)

    return wrapper


def sweep_id_of(spec: SweepSpec) -> str:
    """The id the store gives this spec (`store.register_sweep`), known before registering."""
    return store.spec_hash(spec)[:16]


# ---- planning against the store --------------------------------------------------------------


def plan_remaining(engine: Engine, spec: SweepSpec, problem_ids: Mapping[str, Sequence[str]]) -> SweepPlan:
    """Plan a checked spec (`problem_ids` from `planning.check_sweep`) without the problems the
    store already holds. The one place a sweep is planned: the CLI plans, the flows run what it
    planned. Checking comes first, so a spec that fails writes nothing (not even a new store)."""
    done = _stored_problem_ids(engine, [p.cell_id for p in expand_cells(spec) if p.runs])
    return plan_sweep(spec, problem_ids, done)


@_retried
def _stored_problem_ids(engine: Engine, cell_ids: list[str]) -> dict[str, set[str]]:
    with store.connect(engine) as conn:
        return {cell_id: ids for cell_id in cell_ids if (ids := store.done_problem_ids(conn, cell_id))}


@_retried
def register_plan(engine: Engine, plan: SweepPlan, raw_spec_text: str, created_by: str) -> str:
    """Record the sweep and all its cells (served ones with their source, each with its number
    of problems) in one transaction; failed or cancelled cells go back to pending, the sweep to
    running. Returns the sweep id. Its MLflow run id is cleared: tracking is complete again
    only once it is logged anew."""
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, plan.spec, raw_spec_text, created_by)
        for planned in plan.cells:
            n_problems = len(plan.problem_ids[planned.cell_id])
            store.register_cell(conn, planned.cell, sweep_id=sweep_id, source_cell_id=planned.source_cell_id, n_problems=n_problems)
        current = store.read_cells(conn, sweep_id)
        for row in current.select("cell_id", "status").iter_rows(named=True):
            if row["status"] in ("failed", "cancelled"):
                store.set_cell_status(conn, row["cell_id"], "pending", finished_at=None)
        store.set_sweep_status(conn, sweep_id, "running", mlflow_run_id=None, finished_at=None)
    logger.info(
        "sweep registered sweep=%s cells=%d running=%d served=%d shards=%d problems_left=%d",
        sweep_id, len(plan.cells), len(plan.running_cells), len(plan.served_cells), len(plan.shards), plan.n_problems_left,
    )  # fmt: skip
    return sweep_id


@_retried
def attach_flow_run(engine: Engine, sweep_id: str, flow_run_id: str, n_shards: int) -> None:
    """Record the orchestrator's run of the sweep (linked from the dashboard and MLflow)."""
    with store.transaction(engine) as conn:
        row = store.read_sweep(conn, sweep_id)
        store.set_sweep_status(conn, sweep_id, row["status"], prefect_flow_run_id=flow_run_id, **_keep_finished(row))
    logger.info("sweep started sweep=%s flow_run=%s shards=%d", sweep_id, flow_run_id, n_shards)


def shard_params(plan: SweepPlan, sweep_id: str) -> list[dict]:
    """The JSON parameters of every shard left: what a shard task or deployment run receives."""
    return [
        {
            "cell": plan.cell(shard.cell_id).cell.model_dump(mode="json"),
            "problem_ids": list(shard.problem_ids),
            "sweep_id": sweep_id,
            "shard_index": shard.index,
        }
        for shard in plan.shards
    ]


# ---- one cell ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellState:
    """What the store holds of one cell: None status when it is not registered."""

    status: str | None
    done: frozenset[str]
    """Problems stored."""
    n_problems: int


@_retried
def cell_state(engine: Engine, cell_id: str) -> CellState:
    with store.connect(engine) as conn:
        row = store.read_cell(conn, cell_id)
        if row is None:
            return CellState(None, frozenset(), 0)
        return CellState(row["status"], frozenset(store.done_problem_ids(conn, cell_id)), int(row["n_problems"]))


@_retried
def start_cell(engine: Engine, cell: Any, *, n_problems: int, policy_params: int, verifier_params: int,
               sweep_id: str | None = None, flow_run_id: str | None = None) -> None:  # fmt: skip
    """Register the cell if needed and mark it running with the parameter counts its FLOPs use."""
    fields: dict[str, Any] = {"policy_params": policy_params, "verifier_params": verifier_params}
    if flow_run_id:
        fields["prefect_flow_run_id"] = flow_run_id
    with store.transaction(engine) as conn:
        store.register_cell(conn, cell, sweep_id=sweep_id, n_problems=n_problems,
                            policy_params=policy_params, verifier_params=verifier_params)  # fmt: skip
        store.set_cell_status(conn, cell.cell_id, "running", **fields)


@_retried
def finish_cell_if_complete(engine: Engine, cell_id: str) -> bool:
    """Mark the cell done when every one of its problems is stored; whether it is done."""
    with store.transaction(engine) as conn:
        row = store.read_cell(conn, cell_id)
        if row is None or not row["n_problems"] or row["n_problems_done"] < row["n_problems"]:
            return False
        if row["status"] != "done":
            store.set_cell_status(conn, cell_id, "done")
    return True


@_retried
def mark_cell_failed(engine: Engine, cell_id: str, reason: str = "") -> None:
    """A shard of the cell gave up after its retries: the cell is failed unless already done."""
    with store.transaction(engine) as conn:
        row = store.read_cell(conn, cell_id)
        if row is not None and row["status"] not in ("done", "cancelled"):
            store.set_cell_status(conn, cell_id, "failed")
    logger.warning("cell failed cell=%s reason=%s", cell_id, reason[:300])


# ---- a whole sweep -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellProgress:
    """One cell of a sweep: its store row (`store.read_cells`) and how far it is."""

    row: dict
    n_done: int
    """Problems stored (for a served cell: stored for its source)."""
    n_total: int

    @property
    def cell_id(self) -> str:
        return self.row["cell_id"]

    @property
    def status(self) -> str:
        return self.row["status"]

    @property
    def source_cell_id(self) -> str | None:
        return self.row["source_cell_id"]


@dataclass(frozen=True)
class SweepProgress:
    """A sweep's store row (`store.read_sweep`) and the progress of each of its cells."""

    sweep: dict
    cells: tuple[CellProgress, ...]

    @property
    def sweep_id(self) -> str:
        return self.sweep["sweep_id"]

    @property
    def status(self) -> str:
        return self.sweep["status"]

    @property
    def tracking_complete(self) -> bool:
        """MLflow holds this sweep as the store has it (set only by a complete tracking pass)."""
        return self.sweep["mlflow_run_id"] is not None

    @property
    def n_done(self) -> int:
        return sum(c.n_done for c in self.cells if c.source_cell_id is None)

    @property
    def n_total(self) -> int:
        return sum(c.n_total for c in self.cells if c.source_cell_id is None)

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.cells)


def find_sweep(engine: Engine, ref: str) -> dict:
    """The sweep row for an id, a unique id prefix or a name (the newest of that name)."""
    return store.retrying(engine, lambda: _find(engine, ref), what="finding the sweep")


def _find(engine: Engine, ref: str) -> dict:
    with store.connect(engine) as conn:
        return store.read_sweep(conn, ref)


@_retried
def sweep_progress(engine: Engine, sweep_ref: str) -> SweepProgress:
    """Per-cell progress of a sweep, from the store (one read of the sweep's cells)."""
    with store.connect(engine) as conn:
        sweep = store.read_sweep(conn, sweep_ref)
        cells = store.read_cells(conn, sweep["sweep_id"]).to_dicts()
    by_id = {c["cell_id"]: c for c in cells}
    out = []
    for c in cells:
        source = by_id.get(c["source_cell_id"]) if c["source_cell_id"] else None
        out.append(CellProgress(c, int((source or c)["n_problems_done"]), int(c["n_problems"])))
    return SweepProgress(sweep, tuple(out))


@_retried
def settle_sweep(engine: Engine, sweep_id: str, *, final: bool = False) -> SweepProgress:
    """Bring statuses in line with the store: running cells with every problem stored are
    done, served cells take their source's status, and the sweep is done when every cell is,
    failed/cancelled when none is still pending or running. With `final` (the orchestrator
    has nothing left to wait for), cells still not complete are marked failed."""
    progress = sweep_progress(engine, sweep_id)
    by_id = {c.cell_id: c for c in progress.cells}
    settled: dict[str, str] = {}
    for c in progress.cells:
        if c.source_cell_id is None:
            status = "done" if c.n_total and c.n_done >= c.n_total else c.status
            if final and status not in TERMINAL:
                status = "failed"
            settled[c.cell_id] = status
    for c in progress.cells:
        if c.source_cell_id is not None:
            source = by_id.get(c.source_cell_id)
            settled[c.cell_id] = settled.get(c.source_cell_id, source.status if source else c.status)
    statuses = set(settled.values())
    if statuses <= {"done"}:
        sweep_status = "done"
    elif statuses & {"pending", "running"}:
        sweep_status = "running"
    elif "cancelled" in statuses:
        sweep_status = "cancelled"
    else:
        sweep_status = "failed"
    with store.transaction(engine) as conn:
        for c in progress.cells:
            if settled[c.cell_id] != c.status:
                store.set_cell_status(conn, c.cell_id, settled[c.cell_id])
        if sweep_status != progress.status:
            store.set_sweep_status(conn, sweep_id, sweep_status)
    if sweep_status != progress.status:
        logger.info("sweep %s sweep=%s cells=%s", sweep_status, sweep_id, dict(sorted(Counter(settled.values()).items())))
    return sweep_progress(engine, sweep_id)


@_retried
def is_cancelled(engine: Engine, sweep_id: str) -> bool:
    """Whether the sweep was cancelled (checked by local runs before each shard)."""
    with store.connect(engine) as conn:
        return store.read_sweep(conn, sweep_id)["status"] == "cancelled"


@_retried
def cancel_in_store(engine: Engine, sweep_id: str) -> int:
    """Mark every cell of the sweep that is not done, and the sweep, cancelled; returns the
    number of cells cancelled. Shards of cancelled cells that still start skip their work."""
    n = 0
    with store.transaction(engine) as conn:
        cells = store.read_cells(conn, sweep_id)
        for row in cells.select("cell_id", "status").iter_rows(named=True):
            if row["status"] not in ("done", "cancelled"):
                store.set_cell_status(conn, row["cell_id"], "cancelled")
                n += 1
        store.set_sweep_status(conn, sweep_id, "cancelled")
    logger.info("sweep cancelled sweep=%s cells=%d", sweep_id, n)
    return n


def _keep_finished(row: dict) -> dict:
    # set_*_status stamps finished_at for terminal statuses unless given: keep the stored one.
    return {"finished_at": row["finished_at"]} if row["status"] in TERMINAL else {}
