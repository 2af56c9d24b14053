"""Writing results: sweeps, cells and shards, idempotently, inside the caller's transaction.

Every function takes a `Session` or `Connection` and never commits: the edge owns the
transaction (`store.transaction(engine)`), so a shard is stored whole or not at all.

Idempotency rests on natural keys (docs/store.md). `write_shard` claims each problem by
inserting its `problem_runs` row with ON CONFLICT DO NOTHING ... RETURNING: only problems it
claimed get candidates, nodes and verdicts. A problem already stored — by an earlier attempt
or by a concurrent writer (PostgreSQL makes the second insert wait for the first
transaction, then skip) — is counted as skipped and nothing of it is written twice.

That is what makes `store.run_transaction` safe around `write_shard`: when the server drops
out mid-shard the transaction rolls back whole and is repeated; when it drops out during
COMMIT the answer may be lost although the rows are stored, and the repeat then claims
nothing (the shard reports its problems skipped) and adds nothing to the cell's totals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ttscale.compute import charged_flops, computed_flops, flops
from ttscale.errors import StoreError
from ttscale.spec import CellSpec, SweepSpec, canonical_json
from ttscale.store import schema
from ttscale.store.bulk import bulk_insert
from ttscale.store.encoding import decode_text, encode_floats, encode_json, encode_text
from ttscale.store.schema import STATUSES, utcnow
from ttscale.store.provenance import code_version
from ttscale.tree import Problem, ProblemResult, ShardOutcome, Verdict

SessionOrConnection = Session | Connection


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What `write_shard` did. `n_rows` counts rows inserted into problem_runs, candidates,
    nodes and verdicts (problems shared with other cells are not counted)."""

    n_written_problems: int
    n_skipped_problems: int
    n_rows: int


def connection_of(db: SessionOrConnection) -> Connection:
    """The Connection behind a Session (flushed first, so pending ORM rows are visible)."""
    if isinstance(db, Session):
        db.flush()
        return db.connection()
    return db


def _insert_ignore(conn: Connection, table: sa.Table, keys: Sequence[str]) -> sa.Insert:
    """INSERT ... ON CONFLICT (keys) DO NOTHING for the connection's dialect."""
    dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))


def spec_hash(spec: SweepSpec) -> str:
    """sha256 of the validated spec's canonical JSON: a reformatted YAML hashes the same."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def register_sweep(db: SessionOrConnection, spec: SweepSpec, raw_spec_text: str, created_by: str) -> str:
    """Record a sweep (status `pending`) and return its id; the same name and spec again
    returns the existing id and keeps the first submission's text and author."""
    conn = connection_of(db)
    digest = spec_hash(spec)
    sweep_id = digest[:16]
    row = {
        "id": sweep_id,
        "name": encode_text(spec.name),
        "spec": encode_text(raw_spec_text),
        "spec_hash": digest,
        "created_by": encode_text(created_by),
        "created_at": utcnow(),
        "code_version": code_version(),
        "status": "pending",
    }
    conn.execute(_insert_ignore(conn, schema.sweeps, ["id"]), [row])
    return sweep_id


def register_cell(
    db: SessionOrConnection,
    cell: CellSpec,
    *,
    sweep_id: str | None = None,
    source_cell_id: str | None = None,
    n_problems: int = 0,
    policy_params: int = 0,
    verifier_params: int = 0,
) -> None:
    """Record a cell (status `pending`) and, with `sweep_id`, its membership of that sweep.

    Idempotent: an existing cell keeps its row (status, totals, source); only a new sweep
    link is added, and `n_problems` filled in if it was not known yet. `source_cell_id`: the
    larger-budget cell whose first n candidates this cell reuses (`SweepSpec.generation_source`),
    None when it generates its own. `n_problems`: the problems of the cell's dataset.
    """
    conn = connection_of(db)
    row = {
        "id": cell.cell_id,
        "model": encode_text(cell.model),
        "verifier": encode_text(cell.verifier),
        "aggregation": cell.aggregation,
        "strategy": cell.strategy.name,
        "n": cell.n,
        "beam_width": getattr(cell.strategy, "beam_width", None),
        "dataset": encode_text(cell.dataset.label),
        "seed": cell.seed,
        "spec": cell.canonical_json(),
        "n_problems": int(n_problems),
        "fidelity": cell.fidelity,
        "source_cell_id": source_cell_id,
        "status": "pending",
        "code_version": code_version(),
        "created_at": utcnow(),
        "n_prompt_tokens": 0,
        "n_prompt_tokens_computed": 0,
        "n_generated_tokens": 0,
        "n_verifier_tokens": 0,
        "policy_flops": 0.0,
        "policy_flops_computed": 0.0,
        "verifier_flops": 0.0,
        "policy_params": int(policy_params),
        "verifier_params": int(verifier_params),
    }
    if sweep_id is not None and conn.execute(sa.select(schema.sweeps.c.id).where(schema.sweeps.c.id == sweep_id)).first() is None:
        raise StoreError(f"register_cell: sweep {sweep_id!r} is not registered")
    conn.execute(_insert_ignore(conn, schema.cells, ["id"]), [row])
    if n_problems:
        c = schema.cells.c
        conn.execute(sa.update(schema.cells).where(c.id == cell.cell_id, c.n_problems == 0).values(n_problems=int(n_problems)))
    if sweep_id is not None:
        link = {"sweep_id": sweep_id, "cell_id": cell.cell_id}
        conn.execute(_insert_ignore(conn, schema.sweep_cells, ["sweep_id", "cell_id"]), [link])


_CELL_FIELDS = frozenset({"started_at", "finished_at", "mlflow_run_id", "prefect_flow_run_id", "policy_params", "verifier_params"})
_SWEEP_FIELDS = frozenset({"finished_at", "mlflow_run_id", "prefect_flow_run_id"})


def _status_values(status: str, fields: dict, allowed: frozenset[str], what: str) -> dict:
    if status not in STATUSES:
        raise StoreError(f"{what} status: must be one of {', '.join(STATUSES)}, got {status!r}")
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise TypeError(f"set_{what}_status: unexpected fields {unknown}; allowed: {sorted(allowed)}")
    for key, value in fields.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            raise TypeError(f"set_{what}_status: {key} must be timezone-aware")
    return {"status": status, **fields}


def set_cell_status(db: SessionOrConnection, cell_id: str, status: str, **fields: object) -> None:
    """Set a cell's status and any of `started_at`, `finished_at`, `mlflow_run_id`,
    `prefect_flow_run_id`, `policy_params`, `verifier_params`.

    `running` stamps `started_at` (first time only) and `done`/`failed`/`cancelled` stamp
    `finished_at`, unless given. Raises StoreError for an unknown cell or status.
    """
    conn = connection_of(db)
    values = _status_values(status, fields, _CELL_FIELDS, "cell")
    c = schema.cells.c
    if status == "running" and "started_at" not in values:
        values["started_at"] = sa.func.coalesce(c.started_at, sa.bindparam("now", utcnow(), type_=c.started_at.type))
    if status in ("done", "failed", "cancelled"):
        values.setdefault("finished_at", utcnow())
    result = conn.execute(sa.update(schema.cells).where(c.id == cell_id).values(values))
    if result.rowcount == 0:
        raise StoreError(f"set_cell_status: cell {cell_id!r} is not registered")


def set_sweep_status(db: SessionOrConnection, sweep_id: str, status: str, **fields: object) -> None:
    """Set a sweep's status and any of `finished_at`, `mlflow_run_id`, `prefect_flow_run_id`;
    `done`/`failed`/`cancelled` stamp `finished_at` unless given."""
    conn = connection_of(db)
    values = _status_values(status, fields, _SWEEP_FIELDS, "sweep")
    if status in ("done", "failed", "cancelled"):
        values.setdefault("finished_at", utcnow())
    result = conn.execute(sa.update(schema.sweeps).where(schema.sweeps.c.id == sweep_id).values(values))
    if result.rowcount == 0:
        raise StoreError(f"set_sweep_status: sweep {sweep_id!r} is not registered")


def done_problem_ids(db: SessionOrConnection, cell_id: str) -> set[str]:
    """Ids of the problems already stored for `cell_id` (what a resumed cell skips)."""
    conn = connection_of(db)
    rows = conn.execute(sa.select(schema.problem_runs.c.problem_id).where(schema.problem_runs.c.cell_id == cell_id))
    return {decode_text(pid) for (pid,) in rows}


def _check_outcome(outcome: ShardOutcome) -> None:
    """Reject a malformed shard before anything is written (a runner bug, named precisely)."""
    where = f"shard of cell {outcome.cell_id}"
    if len(outcome.problems) != len(outcome.results):
        raise StoreError(f"{where}: {len(outcome.problems)} problems but {len(outcome.results)} results")
    for i, (problem, result) in enumerate(zip(outcome.problems, outcome.results, strict=True)):
        if problem.id != result.problem_id:
            raise StoreError(f"{where}: results[{i}].problem_id {result.problem_id!r} != problems[{i}].id {problem.id!r}")
    ids = [p.id for p in outcome.problems]
    if len(set(ids)) != len(ids):
        raise StoreError(f"{where}: duplicate problem ids")
    unknown = {v.problem_id for v in outcome.verdicts} - set(ids)
    if unknown:
        raise StoreError(f"{where}: verdicts for problems not in the shard: {sorted(unknown)[:3]}")


def write_shard(db: SessionOrConnection, outcome: ShardOutcome) -> WriteReport:
    """Store one shard: problems (insert if absent), then for every problem not yet stored
    for this cell its problem_runs row, candidates, nodes and verdicts, in bulk (COPY on
    PostgreSQL). Problems already stored are skipped whole. Also adds the written problems'
    tokens and FLOPs to the cell's totals. The cell must be registered."""
    _check_outcome(outcome)
    conn = connection_of(db)
    cell_id = outcome.cell_id
    if conn.execute(sa.select(schema.cells.c.id).where(schema.cells.c.id == cell_id)).first() is None:
        raise StoreError(f"write_shard: cell {cell_id!r} is not registered (call register_cell first)")
    if not outcome.problems:
        return WriteReport(0, 0, 0)

    # Sorted key order on every insert: two transactions touching overlapping problems then
    # lock rows in the same order and cannot deadlock.
    problem_rows = sorted((_problem_row(p) for p in outcome.problems), key=lambda r: (r["dataset"], r["problem_id"]))
    conn.execute(_insert_ignore(conn, schema.problems, ["dataset", "problem_id"]), problem_rows)

    elapsed_each = outcome.elapsed_s / len(outcome.problems)
    now = utcnow()
    run_rows = sorted(
        (
            _problem_run_row(cell_id, p.dataset, r, outcome, elapsed_each, now)
            for p, r in zip(outcome.problems, outcome.results, strict=True)
        ),
        key=lambda r: r["problem_id"],
    )
    stmt = _insert_ignore(conn, schema.problem_runs, ["cell_id", "problem_id"]).returning(schema.problem_runs.c.problem_id)
    claimed = set(conn.execute(stmt, run_rows).scalars().all())
    written = [r for r in outcome.results if encode_text(r.problem_id) in claimed]

    n_rows = len(claimed)
    n_rows += bulk_insert(conn, schema.candidates, _candidate_rows(cell_id, written, outcome.policy_params))
    n_rows += bulk_insert(conn, schema.nodes, _node_rows(cell_id, written))
    claimed_verdicts = (v for v in outcome.verdicts if encode_text(v.problem_id) in claimed)
    n_rows += bulk_insert(conn, schema.verdicts, _verdict_rows(cell_id, claimed_verdicts))
    if written:
        _add_cell_totals(conn, cell_id, [r for r in run_rows if r["problem_id"] in claimed])
    return WriteReport(n_written_problems=len(written), n_skipped_problems=len(outcome.results) - len(written), n_rows=n_rows)


def _problem_row(p: Problem) -> dict:
    return {
        "dataset": encode_text(p.dataset),
        "problem_id": encode_text(p.id),
        "text": encode_text(p.text),
        "answer": encode_text(p.answer),
        "level": p.level,
        "subject": encode_text(p.subject),
        "metadata": encode_json(p.metadata),
    }


def _problem_run_row(
    cell_id: str, dataset: str, r: ProblemResult, outcome: ShardOutcome, elapsed_s: float, now: datetime
) -> dict:
    return {
        "cell_id": cell_id,
        "problem_id": encode_text(r.problem_id),
        "dataset": encode_text(dataset),
        "n_prompt_tokens": r.n_prompt_tokens,
        "n_prompt_tokens_computed": r.n_prompt_tokens_computed,
        "n_generated_tokens": r.n_generated_tokens,
        "n_verifier_tokens": r.n_verifier_tokens,
        "n_policy_calls": r.n_policy_calls,
        "policy_flops": charged_flops(outcome.policy_params, r.n_generated_tokens),
        "policy_flops_computed": computed_flops(outcome.policy_params, r.n_prompt_tokens_computed, r.n_generated_tokens),
        "verifier_flops": flops(outcome.verifier_params, r.n_verifier_tokens),
        "elapsed_s": elapsed_s,
        "n_candidates": len(r.candidates),
        "n_nodes": len(r.nodes),
        "written_at": now,
    }


# Row builders yield tuples in table column order: that is what COPY takes, and cheaper
# than dicts for the millions of rows a large cell has.
def _candidate_rows(cell_id: str, results: Iterable[ProblemResult], policy_params: int) -> Iterable[tuple]:
    for r in results:
        pid = encode_text(r.problem_id)
        # The problem's computed FLOPs split over its candidates by their generated tokens.
        computed = computed_flops(policy_params, r.n_prompt_tokens_computed, r.n_generated_tokens)
        total = sum(c.n_generated_tokens or 0 for c in r.candidates)
        for c in r.candidates:
            yield (
                cell_id,
                pid,
                c.index,
                encode_text(c.text),
                encode_text(c.answer),
                c.answer_method,
                c.answer_class,
                c.correct,
                c.score,
                encode_floats(c.step_scores),
                c.n_prompt_tokens,
                c.n_generated_tokens,
                charged_flops(policy_params, c.n_generated_tokens),
                round(computed * (c.n_generated_tokens or 0) / total) if total else 0,
                c.finish_reason,
                c.leaf,
            )


def _node_rows(cell_id: str, results: Iterable[ProblemResult]) -> Iterable[tuple]:
    for r in results:
        pid = encode_text(r.problem_id)
        for n in r.nodes:
            yield (
                cell_id,
                pid,
                n.id,
                n.parent,
                n.depth,
                n.kind,
                encode_text(n.text),
                n.n_prompt_tokens,
                n.n_generated_tokens,
                n.n_lookahead_tokens,
                n.n_cached_prompt_tokens,
                encode_floats(n.scores),
                n.n_verifier_tokens,
                n.finish_reason,
                n.selected,
                n.pruned,
                n.weight,
            )


def _verdict_rows(cell_id: str, verdicts: Iterable[Verdict]) -> Iterable[tuple]:
    for v in verdicts:
        yield (cell_id, encode_text(v.problem_id), v.source, v.method, v.n, encode_text(v.answer), v.correct)


def _add_cell_totals(conn: Connection, cell_id: str, runs: list[dict]) -> None:
    # Last statement of the shard: PostgreSQL holds the cell's row lock until commit, so
    # concurrent shards of one cell serialise only here.
    c = schema.cells.c

    def added(key: str) -> sa.ColumnElement:
        # An unrecorded count (null) makes the cell's total unknown, not smaller.
        values = [r[key] for r in runs]
        if any(v is None for v in values):
            return sa.null()
        return c[key] + (float(sum(values)) if isinstance(c[key].type, sa.Double) else sum(values))

    keys = ("n_prompt_tokens", "n_prompt_tokens_computed", "n_generated_tokens", "n_verifier_tokens",
            "policy_flops", "policy_flops_computed", "verifier_flops")  # fmt: skip
    conn.execute(sa.update(schema.cells).where(c.id == cell_id).values({key: added(key) for key in keys}))
