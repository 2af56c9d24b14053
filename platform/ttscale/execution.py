"""Sweeps against the store: check a spec, register it, find the work left, run one shard,
settle statuses, report progress. The library side of `ttscale sweep` and of the Prefect
flows (which stay thin: each task calls one function here).

The store, not Prefect, records what is done: a problem is done for a cell when its
`problem_runs` row exists. So a retried or resubmitted shard skips what is stored, and a
cell's status is settled from what the store holds (`settle_sweep`), whoever asks.

Statuses: a sweep and its cells start `pending`; a running cell is `running` from its first
shard and `done` once every problem is stored; a served cell (see `planning`) mirrors its
source cell; `failed` when a shard gave up after its retries, `cancelled` by
`ttscale sweep cancel`. Resubmitting a sweep puts failed and cancelled cells back to pending.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ttscale.errors import DataError, SpecError, TtscaleError
from ttscale.planning import SweepPlan, dataset_key, expand_cells, plan_sweep
from ttscale.spec import CellSpec, DatasetSpec, SweepSpec, parse_sweep_text, read_sweep_file

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "cancelled"})


def _retried(fn):
    """`fn(engine, ...)` repeated whole while the store is unavailable (`store.retrying`,
    docs/reliability.md): each function so marked reads, or writes idempotently, in
    connections and transactions of its own."""

    @functools.wraps(fn)
    def wrapper(engine, *args, **kwargs):
        from ttscale import store

        return store.retrying(engine, lambda: fn(engine, *args, **kwargs), what=fn.__name__.strip("_").replace("_", " "))

    return wrapper


# ---- specs ----------------------------------------------------------------------------------


def parse_spec_text(text: str, source: str = "spec") -> SweepSpec:
    """Validate the YAML text of a sweep spec (as `spec.load_sweep_yaml` does for a file);
    YAML loaded safely, every failure a SpecError (`spec.parse_sweep_text`)."""
    return parse_sweep_text(text, source=source)


def read_spec_file(path: str) -> tuple[SweepSpec, str]:
    """The validated spec and its text exactly as written (`spec.read_sweep_file`)."""
    return read_sweep_file(path)


def sweep_id_of(spec: SweepSpec) -> str:
    """The id the store gives this spec (`store.register_sweep`), known before registering."""
    from ttscale.store import spec_hash

    return spec_hash(spec)[:16]


def _renamed(message: str, old: str, new: str) -> str:
    return new + message[len(old) :] if message.startswith(old) else f"{new}: {message}"


def check_sweep(spec: SweepSpec, settings) -> dict[str, list[str]]:
    """Check everything the sweep needs before anything is queued — cells unique, every model,
    verifier, strategy and dataset known, every dataset readable — and return each dataset's
    problem ids (keyed by `planning.dataset_key`). Loads no model. Raises SpecError/DataError
    with one line per problem, each naming the spec field."""
    from ttscale.backends import resolve_policy_model
    from ttscale.data import load_problems
    from ttscale.runner import prepare_cell
    from ttscale.verifiers import VERIFIERS, verifier_names

    errors: list[str] = []
    try:
        planned = expand_cells(spec)
    except SpecError as err:
        errors.append(str(err))
        planned = []
    for i, model in enumerate(spec.models):
        try:
            resolve_policy_model(model, settings)
        except TtscaleError as err:
            errors.append(_renamed(str(err), "model", f"models[{i}]"))
    known_verifiers = verifier_names()
    for i, verifier in enumerate(spec.verifiers):
        if verifier is not None and verifier not in known_verifiers:
            errors.append(VERIFIERS.unknown_message(verifier, f"verifiers[{i}]"))
    ids: dict[str, list[str]] = {}
    for i, dataset in enumerate(spec.datasets):
        try:
            ids[dataset_key(dataset)] = [p.id for p in load_problems(dataset)]
        except TtscaleError as err:
            msg = str(err)
            if msg.startswith("dataset.name"):
                errors.append(_renamed(msg, "dataset.name", f"datasets[{i}].name"))
            elif dataset.path is not None and msg.startswith(dataset.path):
                errors.append(f"datasets[{i}].path: {msg}")
            else:
                errors.append(f"datasets[{i}]: {msg}")
    if not errors:
        # The runner's own check on one cell per distinct combination: what a shard will do first.
        seen: set[tuple] = set()
        for p in planned:
            key = (p.cell.model, p.cell.verifier, p.cell.strategy.name, dataset_key(p.cell.dataset))
            if key in seen:
                continue
            seen.add(key)
            try:
                prepare_cell(p.cell, settings)
            except TtscaleError as err:
                errors.append(str(err))
    if errors:
        unique = list(dict.fromkeys(errors))
        error_type = DataError if all("dataset" in e for e in unique) else SpecError
        raise error_type("\n".join(unique))
    return ids


def build_plan(spec: SweepSpec, settings, engine=None) -> SweepPlan:
    """Check the spec (`check_sweep`) and plan it; with `engine`, problems already stored are
    left out of the shards."""
    ids = check_sweep(spec, settings)
    done: dict[str, set[str]] = {}
    if engine is not None:
        done = _stored_problem_ids(engine, [p.cell_id for p in expand_cells(spec) if p.runs])
    return plan_sweep(spec, ids, done)


@_retried
def _stored_problem_ids(engine, cell_ids: list[str]) -> dict[str, set[str]]:
    from ttscale import store

    done: dict[str, set[str]] = {}
    with store.connect(engine) as conn:
        for cell_id in cell_ids:
            stored = store.done_problem_ids(conn, cell_id)
            if stored:
                done[cell_id] = stored
    return done


def open_store(settings):
    """An engine on the configured store, checked reachable and migrated (StoreError if not)."""
    from ttscale import store

    engine = store.make_engine(settings.database_url)
    store.retrying(engine, lambda: store.check_reachable_and_migrated(engine), what="connecting to the store")
    return engine


# ---- registering ----------------------------------------------------------------------------


@_retried
def register_plan(
    engine,
    plan: SweepPlan,
    raw_spec_text: str,
    created_by: str,
    *,
    prefect_flow_run_id: str | None = None,
) -> str:
    """Record the sweep and all its cells (served ones with their source) in one transaction;
    failed or cancelled cells go back to pending, the sweep to running. Returns the sweep id.
    Its MLflow run id is cleared: tracking is complete again only once it is logged anew."""
    from ttscale import store

    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, plan.spec, raw_spec_text, created_by)
        for planned in plan.cells:
            store.register_cell(conn, planned.cell, sweep_id=sweep_id, source_cell_id=planned.source_cell_id)
        current = store.read_cells(conn, sweep_id)
        for row in current.select("id", "status").iter_rows(named=True):
            if row["status"] in ("failed", "cancelled"):
                store.set_cell_status(conn, row["id"], "pending", finished_at=None)
        fields: dict[str, Any] = {"mlflow_run_id": None, "finished_at": None}
        if prefect_flow_run_id:
            fields["prefect_flow_run_id"] = prefect_flow_run_id
        store.set_sweep_status(conn, sweep_id, "running", **fields)
    logger.info(
        "sweep registered sweep=%s cells=%d running=%d served=%d shards=%d problems_left=%d",
        sweep_id,
        len(plan.cells),
        len(plan.running_cells),
        len(plan.served_cells),
        len(plan.shards),
        plan.n_problems_left,
    )
    return sweep_id


def shard_params(plan: SweepPlan, sweep_id: str) -> list[dict]:
    """The JSON parameters of every shard left: what a shard task or deployment run receives."""
    out = []
    for shard in plan.shards:
        cell = plan.cell(shard.cell_id).cell
        out.append(
            {
                "cell": cell.model_dump(mode="json"),
                "problem_ids": list(shard.problem_ids),
                "sweep_id": sweep_id,
                "shard_index": shard.index,
            }
        )
    return out


# ---- running one shard ----------------------------------------------------------------------


@dataclass
class CellRuntime:
    """What a cell's shards run with: problems, policy, verifier and prompt builder."""

    prepared: Any
    policy: Any
    verifier: Any
    prompts: Any


def load_cell_runtime(cell: CellSpec, settings, prepared=None) -> CellRuntime:
    """Load the policy (one engine per process: `backends.load_policy` caches it), the
    verifier and the prompt builder of a cell, as `ttscale run` does."""
    from ttscale.backends import load_policy
    from ttscale.prompting import PromptBuilder
    from ttscale.runner import prepare_cell
    from ttscale.verifiers import load_verifier

    prepared = prepared or prepare_cell(cell, settings)
    policy = load_policy(prepared.model_info, settings, seed=cell.seed)
    verifier = load_verifier(cell.verifier, policy, settings) if cell.verifier else None
    info = prepared.model_info
    prompts = PromptBuilder(chat=policy.chat_prompt, format=info.prompt_format, system=info.system_prompt)
    return CellRuntime(prepared, policy, verifier, prompts)


def release_policies() -> None:
    """Stop the policy engines this process holds. A vLLM engine runs in a child process that
    the interpreter otherwise waits for at exit (multiprocessing joins its children), so every
    entry point that may have loaded one calls this when its work is done."""
    import sys

    engines = sys.modules.get("ttscale.backends.vllm_engine")
    if engines is not None and hasattr(engines, "shutdown_all"):
        engines.shutdown_all()


@dataclass(frozen=True)
class ShardReport:
    """What one shard did; small and JSON-friendly (a task's return value)."""

    cell_id: str
    n_problems: int
    """Problems asked for."""
    n_written: int
    n_skipped: int
    """Already stored (by an earlier attempt or another run), or skipped as cancelled."""
    elapsed_s: float
    cell_done: bool
    cancelled: bool = False
    accuracy: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def as_cell(cell: CellSpec | Mapping | str) -> CellSpec:
    """A CellSpec from itself, its JSON text or its `model_dump(mode="json")` mapping."""
    from pydantic import ValidationError

    from ttscale.spec import format_validation_error

    if isinstance(cell, CellSpec):
        return cell
    try:
        return CellSpec.model_validate_json(cell) if isinstance(cell, str) else CellSpec.model_validate(cell)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, prefix="cell.")) from None


def _cell_status(conn, cell_id: str, sweep_id: str | None) -> tuple[str | None, int]:
    from ttscale import store

    cells = store.read_cells(conn, sweep_id)
    row = cells.filter(cells["id"] == cell_id)
    if row.height == 0:
        return None, 0
    return row["status"][0], int(row["n_problems_done"][0])


def run_stored_shard(
    engine,
    cell: CellSpec | Mapping | str,
    problem_ids: Sequence[str],
    settings,
    *,
    sweep_id: str | None = None,
    prefect_flow_run_id: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ShardReport:
    """Run the problems of `problem_ids` not yet stored for `cell` and store them in one
    transaction; mark the cell done when all its problems are stored. Skips everything when
    the cell is cancelled. Registers the cell if needed, so a shard is self-contained."""
    from ttscale import store
    from ttscale.runner import prepare_cell, run_shard

    start = time.perf_counter()
    cell = as_cell(cell)
    prepared = prepare_cell(cell, settings)
    by_id = {p.id: p for p in prepared.problems}
    unknown = [pid for pid in problem_ids if pid not in by_id]
    if unknown:
        raise SpecError(f"problem_ids: {len(unknown)} not in dataset {cell.dataset.label}, e.g. {unknown[0]!r}")
    status, done = _stored_state(engine, cell.cell_id, sweep_id)
    if status == "cancelled":
        logger.info("shard skipped cell=%s: cancelled", cell.cell_id)
        return ShardReport(cell.cell_id, len(problem_ids), 0, len(problem_ids), 0.0, False, cancelled=True)
    todo = [by_id[pid] for pid in problem_ids if pid not in done]
    if not todo:
        logger.info("shard skipped cell=%s: all %d problems already stored", cell.cell_id, len(problem_ids))
        cell_done = _finish_cell_if_complete(engine, cell, len(prepared.problems), sweep_id)
        return ShardReport(cell.cell_id, len(problem_ids), 0, len(problem_ids), time.perf_counter() - start, cell_done)
    runtime = load_cell_runtime(cell, settings, prepared)
    verifier_params = runtime.verifier.n_params if runtime.verifier is not None else 0
    fields: dict[str, Any] = {"policy_params": runtime.policy.n_params, "verifier_params": verifier_params}
    if prefect_flow_run_id:
        fields["prefect_flow_run_id"] = prefect_flow_run_id

    def register(conn) -> None:
        store.register_cell(conn, cell, sweep_id=sweep_id, policy_params=runtime.policy.n_params, verifier_params=verifier_params)
        store.set_cell_status(conn, cell.cell_id, "running", **fields)

    store.run_transaction(engine, register, what="registering the cell")
    outcome = run_shard(cell, todo, runtime.policy, runtime.verifier, runtime.prompts, progress=progress)
    # All or nothing, and idempotent: a retry after a lost commit answer writes nothing twice.
    report = store.run_transaction(engine, lambda conn: store.write_shard(conn, outcome), what="writing the shard")
    cell_done = _finish_cell_if_complete(engine, cell, len(prepared.problems), sweep_id)
    if cell_done and sweep_id is not None:
        settle_sweep(engine, sweep_id)  # served cells follow their source; the sweep is done with its last cell
    at_n = [v for v in outcome.verdicts if v.n == cell.n]
    accuracy = {
        m: round(sum(v.correct for v in at_n if v.method == m) / len(todo), 4) for m in sorted({v.method for v in at_n})
    }
    return ShardReport(
        cell.cell_id,
        len(problem_ids),
        report.n_written_problems,
        len(problem_ids) - report.n_written_problems,
        time.perf_counter() - start,
        cell_done,
        accuracy=accuracy,
    )


@_retried
def _stored_state(engine, cell_id: str, sweep_id: str | None) -> tuple[str | None, set[str]]:
    """The cell's status (None: not registered) and the problems stored for it."""
    from ttscale import store

    with store.connect(engine) as conn:
        status, _ = _cell_status(conn, cell_id, sweep_id)
        return status, (store.done_problem_ids(conn, cell_id) if status is not None else set())


@_retried
def _finish_cell_if_complete(engine, cell: CellSpec, n_total: int, sweep_id: str | None) -> bool:
    from ttscale import store

    with store.transaction(engine) as conn:
        status, n_done = _cell_status(conn, cell.cell_id, sweep_id)
        if status is None or n_done < n_total:
            return False
        if status != "done":
            store.set_cell_status(conn, cell.cell_id, "done")
    return True


@_retried
def mark_cell_failed(engine, cell: CellSpec | Mapping | str, reason: str = "") -> None:
    """A shard of `cell` gave up after its retries: the cell is failed unless already done."""
    from ttscale import store

    cell = as_cell(cell)
    with store.transaction(engine) as conn:
        status, _ = _cell_status(conn, cell.cell_id, None)
        if status is not None and status not in ("done", "cancelled"):
            store.set_cell_status(conn, cell.cell_id, "failed")
    logger.warning("cell failed cell=%s reason=%s", cell.cell_id, reason[:300])


# ---- settling and progress --------------------------------------------------------------------


@dataclass(frozen=True)
class CellProgress:
    cell_id: str
    model: str
    strategy: str
    verifier: str | None
    n: int
    seed: int
    dataset: str
    status: str
    n_done: int
    """Problems stored (for a served cell: stored for its source)."""
    n_total: int
    source_cell_id: str | None
    mlflow_run_id: str | None


@dataclass(frozen=True)
class SweepProgress:
    sweep_id: str
    name: str
    status: str
    cells: tuple[CellProgress, ...]
    mlflow_run_id: str | None
    prefect_flow_run_id: str | None

    @property
    def tracking_complete(self) -> bool:
        """MLflow holds this sweep as the store has it (set only by a complete tracking pass)."""
        return self.mlflow_run_id is not None

    @property
    def n_done(self) -> int:
        return sum(c.n_done for c in self.cells if c.source_cell_id is None)

    @property
    def n_total(self) -> int:
        return sum(c.n_total for c in self.cells if c.source_cell_id is None)

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.cells)


def find_sweep(conn, ref: str) -> dict:
    """The sweep row for an id, a unique id prefix or a name (the newest of that name)."""
    from ttscale import store

    sweeps = store.read_sweeps(conn)
    rows = sweeps.to_dicts()
    for match in (
        [r for r in rows if r["id"] == ref],
        [r for r in rows if r["id"].startswith(ref)] if len(ref) >= 4 else [],
        [r for r in rows if r["name"] == ref][:1],
    ):
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            raise SpecError(f"sweep: {ref!r} matches {len(match)} sweeps; give more of the id")
    known = ", ".join(f"{r['id']} ({r['name']})" for r in rows[:5]) or "none"
    raise SpecError(f"sweep: no sweep {ref!r} in the store; newest: {known}")


class ProblemCounts:
    """Problems per dataset spec, loaded once each."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __call__(self, dataset: DatasetSpec) -> int:
        from ttscale.data import load_problems

        key = dataset_key(dataset)
        if key not in self._counts:
            try:
                self._counts[key] = len(load_problems(dataset))
            except TtscaleError:
                self._counts[key] = 0
        return self._counts[key]


@_retried
def sweep_progress(engine, sweep_ref: str, counts: ProblemCounts | None = None) -> SweepProgress:
    """Per-cell progress of a sweep, from the store."""
    from ttscale import store

    counts = counts or ProblemCounts()
    with store.connect(engine) as conn:
        sweep = find_sweep(conn, sweep_ref)
        cells = store.read_cells(conn, sweep["id"]).to_dicts()
    by_id = {c["id"]: c for c in cells}
    out = []
    for c in cells:
        spec = as_cell(c["spec"])
        source = by_id.get(c["source_cell_id"]) if c["source_cell_id"] else None
        n_done = source["n_problems_done"] if source is not None else c["n_problems_done"]
        out.append(
            CellProgress(
                c["id"], c["model"], c["strategy"], c["verifier"], c["n"], c["seed"], c["dataset"], c["status"],
                int(n_done), counts(spec.dataset), c["source_cell_id"], c["mlflow_run_id"],
            )
        )  # fmt: skip
    return SweepProgress(sweep["id"], sweep["name"], sweep["status"], tuple(out), sweep["mlflow_run_id"], sweep["prefect_flow_run_id"])



@_retried
def settle_sweep(engine, sweep_id: str, *, final: bool = False) -> SweepProgress:
    """Bring statuses in line with the store: running cells with every problem stored are
    done, served cells take their source's status, and the sweep is done when every cell is,
    failed/cancelled when none is still pending or running. With `final` (the orchestrator
    has nothing left to wait for), cells still not complete are marked failed."""
    from ttscale import store

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
        logger.info("sweep %s sweep=%s cells=%s", sweep_status, sweep_id, dict(sorted(_count(settled.values()).items())))
    return sweep_progress(engine, sweep_id)


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


@_retried
def is_cancelled(engine, sweep_id: str) -> bool:
    """Whether the sweep was cancelled (checked by local runs before each shard)."""
    from ttscale import store

    with store.connect(engine) as conn:
        sweeps = store.read_sweeps(conn)
    row = sweeps.filter(sweeps["id"] == sweep_id)
    return row.height > 0 and row["status"][0] == "cancelled"


@_retried
def cancel_in_store(engine, sweep_id: str) -> int:
    """Mark every cell of the sweep that is not done, and the sweep, cancelled; returns the
    number of cells cancelled. Shards of cancelled cells that still start skip their work."""
    from ttscale import store

    n = 0
    with store.transaction(engine) as conn:
        cells = store.read_cells(conn, sweep_id)
        for row in cells.select("id", "status").iter_rows(named=True):
            if row["status"] not in ("done", "cancelled"):
                store.set_cell_status(conn, row["id"], "cancelled")
                n += 1
        store.set_sweep_status(conn, sweep_id, "cancelled")
    logger.info("sweep cancelled sweep=%s cells=%d", sweep_id, n)
    return n

