"""Readers: polars DataFrames over the store, for analysis, reports and the dashboard.

Each reader takes a Connection (or Session/Engine) and returns a frame with a fixed schema —
the same dtypes on SQLite and PostgreSQL, and the right columns even when no row matches.
Every query is a parameterised SQLAlchemy select. Text is decoded (`store.encoding`); score
lists come back as list[f64]. Big text columns are left out unless asked for.

On PostgreSQL, large reads (candidates, nodes, verdicts) stream as CSV out of COPY into
polars; elsewhere rows come from the DBAPI cursor, one typed Series per column.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ttscale.errors import SpecError, StoreError
from ttscale.store import schema
from ttscale.store.encoding import decode_floats, decode_frame, decode_text, encode_text
from ttscale.tree import Candidate, Node, ProblemResult

UTC_TS = pl.Datetime("us", "UTC")

SWEEP_SCHEMA = {
    "sweep_id": pl.String,
    "name": pl.String,
    "spec": pl.String,
    "spec_hash": pl.String,
    "created_by": pl.String,
    "created_at": UTC_TS,
    "code_version": pl.String,
    "status": pl.String,
    "finished_at": UTC_TS,
    "mlflow_run_id": pl.String,
    "prefect_flow_run_id": pl.String,
    "n_cells": pl.Int64,
}
CELL_SCHEMA = {
    "cell_id": pl.String,
    "model": pl.String,
    "verifier": pl.String,
    "aggregation": pl.String,
    "strategy": pl.String,
    "n": pl.Int64,
    "beam_width": pl.Int64,
    "dataset": pl.String,
    "seed": pl.Int64,
    "spec": pl.String,
    "n_problems": pl.Int64,
    "fidelity": pl.String,
    "source_cell_id": pl.String,
    "status": pl.String,
    "code_version": pl.String,
    "created_at": UTC_TS,
    "started_at": UTC_TS,
    "finished_at": UTC_TS,
    "n_prompt_tokens": pl.Int64,
    "n_prompt_tokens_computed": pl.Int64,
    "n_generated_tokens": pl.Int64,
    "n_verifier_tokens": pl.Int64,
    "policy_flops": pl.Float64,
    "policy_flops_computed": pl.Float64,
    "verifier_flops": pl.Float64,
    "policy_params": pl.Int64,
    "verifier_params": pl.Int64,
    "mlflow_run_id": pl.String,
    "prefect_flow_run_id": pl.String,
    "n_problems_done": pl.Int64,
}
CANDIDATE_SCHEMA = {
    "cell_id": pl.String,
    "problem_id": pl.String,
    "idx": pl.Int64,
    "answer": pl.String,
    "answer_method": pl.String,
    "answer_class": pl.Int64,
    "correct": pl.Boolean,
    "score": pl.Float64,
    "n_prompt_tokens": pl.Int64,
    "n_generated_tokens": pl.Int64,
    "policy_flops": pl.Int64,
    "policy_flops_computed": pl.Int64,
    "finish_reason": pl.String,
    "leaf_node": pl.Int64,
}
CANDIDATE_TEXT_SCHEMA = {"text": pl.String, "step_scores": pl.List(pl.Float64)}
PROBLEM_RUN_SCHEMA = {
    "cell_id": pl.String,
    "problem_id": pl.String,
    "dataset": pl.String,
    "n_prompt_tokens": pl.Int64,
    "n_prompt_tokens_computed": pl.Int64,
    "n_generated_tokens": pl.Int64,
    "n_verifier_tokens": pl.Int64,
    "n_policy_calls": pl.Int64,
    "policy_flops": pl.Int64,
    "policy_flops_computed": pl.Int64,
    "verifier_flops": pl.Int64,
    "elapsed_s": pl.Float64,
    "n_candidates": pl.Int64,
    "n_nodes": pl.Int64,
    "written_at": UTC_TS,
}
PROBLEM_SCHEMA = {
    "dataset": pl.String,
    "problem_id": pl.String,
    "text": pl.String,
    "answer": pl.String,
    "level": pl.Int64,
    "subject": pl.String,
    "metadata": pl.String,
}
NODE_SCHEMA = {
    "cell_id": pl.String,
    "problem_id": pl.String,
    "node_id": pl.Int64,
    "parent_id": pl.Int64,
    "depth": pl.Int64,
    "kind": pl.String,
    "text": pl.String,
    "n_prompt_tokens": pl.Int64,
    "n_generated_tokens": pl.Int64,
    "n_lookahead_tokens": pl.Int64,
    "n_cached_prompt_tokens": pl.Int64,
    "scores": pl.List(pl.Float64),
    "n_verifier_tokens": pl.Int64,
    "finish_reason": pl.String,
    "selected": pl.Boolean,
    "pruned": pl.Boolean,
    "weight": pl.Float64,
}
VERDICT_SCHEMA = {
    "cell_id": pl.String,
    "problem_id": pl.String,
    "source": pl.String,
    "method": pl.String,
    "n": pl.Int64,
    "answer": pl.String,
    "correct": pl.Float64,
}
ID_COLUMNS = {"sweep_id": "id", "cell_id": "id"}
"""Frames name a sweep's and a cell's id `sweep_id` and `cell_id`, as every other table does;
in their own tables the column is `id`."""


def _conn(db: Connection | Session | Engine) -> tuple[Connection, bool]:
    """(connection, opened_here) — readers accept whatever the caller holds."""
    if isinstance(db, Engine):
        return db.connect(), True
    if isinstance(db, Session):
        return db.connection(), False
    return db, False


def query_frame(db: Connection | Session | Engine, query: sa.Select, frame_schema: dict) -> pl.DataFrame:
    """Run `query` (its columns named and ordered as `frame_schema`) and return a frame with
    exactly `frame_schema`'s dtypes, text decoded and score lists parsed."""
    assert list(query.selected_columns.keys()) == list(frame_schema), "query and frame schema disagree"
    has_ts = any(isinstance(v, pl.Datetime) for v in frame_schema.values())
    conn, opened = _conn(db)
    try:
        if conn.dialect.name == "postgresql" and not has_ts:
            df = _frame_from_copy(conn, query, frame_schema)
        else:
            df = _frame_from_rows(conn, query, frame_schema, processed=has_ts)
    finally:
        if opened:
            conn.close()
    lists = [k for k, v in frame_schema.items() if isinstance(v, pl.List)]
    return decode_frame(df, float_list_columns=lists).select([pl.col(k).cast(v) for k, v in frame_schema.items()])


def _frame_from_copy(conn: Connection, query: sa.Select, frame_schema: dict) -> pl.DataFrame:
    """PostgreSQL: `COPY (query) TO STDOUT` as CSV, parsed by polars — no Python object per
    value; about twice as fast as `pl.read_database` on a million candidates
    (benchmarks/RESULTS.md). Timestamps would need a fixed text format, so frames with
    timestamps (sweeps, cells, problem_runs: all small) take the row path.

    The query's bound values are merged into the COPY statement by psycopg, quoted as
    literals (COPY takes no server-side parameters). FORCE_QUOTE * quotes every non-NULL
    value, so an unquoted empty field is NULL and `""` the empty string.
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    statement = f"COPY ({compiled.string}) TO STDOUT (FORMAT csv, FORCE_QUOTE *)"
    buffer = io.BytesIO()
    with conn.connection.dbapi_connection.cursor() as cur, cur.copy(statement, compiled.params) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    # CSV carries booleans as t/f and score lists as JSON text: read both as text first.
    raw = {k: pl.String if v == pl.Boolean or isinstance(v, pl.List) else v for k, v in frame_schema.items()}
    df = pl.read_csv(buffer, has_header=False, new_columns=list(raw), schema=raw, quote_char='"')
    bools = [k for k, v in frame_schema.items() if v == pl.Boolean]
    return df.with_columns(pl.col(k).replace_strict({"t": True, "f": False}, return_dtype=pl.Boolean) for k in bools)


def _frame_from_rows(conn: Connection, query: sa.Select, frame_schema: dict, *, processed: bool) -> pl.DataFrame:
    """Any engine: fetch rows, build one typed Series per column. `processed`: go through
    SQLAlchemy's result processing (UTCDateTime needs it); otherwise take the driver's rows
    as they are, skipping a Row object per row."""
    result = conn.execute(query)
    try:
        rows = result.fetchall() if processed else result.cursor.fetchall()
    finally:
        result.close()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in frame_schema]
    return pl.DataFrame([_series(k, list(col), v) for (k, v), col in zip(frame_schema.items(), columns, strict=True)])


def _series(name: str, values: list, dtype: pl.DataType) -> pl.Series:
    if isinstance(dtype, pl.List):  # JSON text, parsed by decode_frame
        return pl.Series(name, values, dtype=pl.String)
    try:
        return pl.Series(name, values, dtype=dtype, strict=True)  # the fast path
    except TypeError:  # e.g. SQLite's 0/1 booleans
        return pl.Series(name, values, dtype=dtype, strict=False)


def _encoded(values: Sequence[str]) -> list[str]:
    return [encode_text(v) for v in values]


def _columns(table: sa.Table, frame_schema: dict) -> list:
    return [table.c[ID_COLUMNS.get(k, k)].label(k) for k in frame_schema if ID_COLUMNS.get(k, k) in table.c]


def _sweep_query() -> sa.Select:
    s, sc = schema.sweeps, schema.sweep_cells
    n_cells = sa.select(sa.func.count()).where(sc.c.sweep_id == s.c.id).scalar_subquery()
    return sa.select(*_columns(s, SWEEP_SCHEMA), n_cells.label("n_cells"))


def read_sweeps(db: Connection | Session | Engine) -> pl.DataFrame:
    """Every sweep, newest first, with `n_cells` (cells linked to it)."""
    s = schema.sweeps
    return query_frame(db, _sweep_query().order_by(s.c.created_at.desc(), s.c.id), SWEEP_SCHEMA)


def read_sweep(db: Connection | Session | Engine, ref: str) -> dict:
    """One sweep's row by id, unique id prefix (4 characters or more) or name (the newest of
    that name); SpecError naming the newest sweeps when nothing matches, or when a prefix is
    ambiguous."""
    s = schema.sweeps
    newest = (s.c.created_at.desc(), s.c.id)
    tries = [_sweep_query().where(s.c.id == ref)]
    if len(ref) >= 4:
        tries.append(_sweep_query().where(s.c.id.startswith(ref, autoescape=True)).limit(2))
    tries.append(_sweep_query().where(s.c.name == encode_text(ref)).order_by(*newest).limit(1))
    for query in tries:
        rows = query_frame(db, query, SWEEP_SCHEMA)
        if rows.height > 1:
            raise SpecError(f"sweep: {ref!r} matches {rows.height} sweeps; give more of the id")
        if rows.height == 1:
            return rows.row(0, named=True)
    latest = query_frame(db, _sweep_query().order_by(*newest).limit(5), SWEEP_SCHEMA)
    known = ", ".join(f"{r['sweep_id']} ({r['name']})" for r in latest.iter_rows(named=True)) or "none"
    raise SpecError(f"sweep: no sweep {ref!r} in the store; newest: {known}")


def count_sweeps_and_cells(db: Connection | Session | Engine) -> tuple[int, int]:
    """How many sweeps and cells the store holds (for messages that say what there is)."""
    conn, opened = _conn(db)
    try:
        n_sweeps = conn.execute(sa.select(sa.func.count()).select_from(schema.sweeps)).scalar_one()
        n_cells = conn.execute(sa.select(sa.func.count()).select_from(schema.cells)).scalar_one()
    finally:
        if opened:
            conn.close()
    return int(n_sweeps), int(n_cells)


def _cell_query() -> sa.Select:
    c, pr = schema.cells, schema.problem_runs
    done = sa.select(sa.func.count()).where(pr.c.cell_id == c.c.id).scalar_subquery()
    return sa.select(*_columns(c, CELL_SCHEMA), done.label("n_problems_done"))


def read_cells(db: Connection | Session | Engine, sweep_id: str | None = None, cell_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Every cell (or those linked to `sweep_id`, or those of `cell_ids`), with `n_problems_done`."""
    c = schema.cells
    query = _cell_query().order_by(c.c.created_at, c.c.id)
    if sweep_id is not None:
        query = query.join(schema.sweep_cells, schema.sweep_cells.c.cell_id == c.c.id).where(
            schema.sweep_cells.c.sweep_id == sweep_id
        )
    if cell_ids is not None:
        query = query.where(c.c.id.in_(list(cell_ids)))
    return query_frame(db, query, CELL_SCHEMA)


def read_cell(db: Connection | Session | Engine, cell_id: str) -> dict | None:
    """One cell's row (as `read_cells` has it), None when it is not registered."""
    rows = query_frame(db, _cell_query().where(schema.cells.c.id == cell_id), CELL_SCHEMA)
    return rows.row(0, named=True) if rows.height else None


def read_candidates(db: Connection | Session | Engine, cell_ids: Sequence[str], *, with_text: bool = False) -> pl.DataFrame:
    """Candidates of `cell_ids`, ordered by cell, problem, idx. `with_text` adds `text` and
    `step_scores` (large: leave them out for accuracy/compute analysis)."""
    t = schema.candidates
    frame_schema = CANDIDATE_SCHEMA | (CANDIDATE_TEXT_SCHEMA if with_text else {})
    query = (
        sa.select(*[t.c[k] for k in frame_schema])
        .where(t.c.cell_id.in_(list(cell_ids)))
        .order_by(t.c.cell_id, t.c.problem_id, t.c.idx)
    )
    return query_frame(db, query, frame_schema)


def read_problem_runs(db: Connection | Session | Engine, cell_ids: Sequence[str]) -> pl.DataFrame:
    """Per-problem totals of `cell_ids` (one row per problem done)."""
    t = schema.problem_runs
    query = (
        sa.select(*[t.c[k] for k in PROBLEM_RUN_SCHEMA])
        .where(t.c.cell_id.in_(list(cell_ids)))
        .order_by(t.c.cell_id, t.c.problem_id)
    )
    return query_frame(db, query, PROBLEM_RUN_SCHEMA)


def read_problems(
    db: Connection | Session | Engine, dataset: str | None = None, problem_ids: Sequence[str] | None = None
) -> pl.DataFrame:
    """Stored problems, optionally of one dataset and/or only `problem_ids`."""
    t = schema.problems
    query = sa.select(*[t.c[k] for k in PROBLEM_SCHEMA]).order_by(t.c.dataset, t.c.problem_id)
    if dataset is not None:
        query = query.where(t.c.dataset == encode_text(dataset))
    if problem_ids is not None:
        query = query.where(t.c.problem_id.in_(_encoded(problem_ids)))
    return query_frame(db, query, PROBLEM_SCHEMA)


def read_problems_of_cells(db: Connection | Session | Engine, cell_ids: Sequence[str]) -> pl.DataFrame:
    """The problems that `cell_ids` have results for, each once."""
    t, pr = schema.problems, schema.problem_runs
    done = sa.select(pr.c.dataset, pr.c.problem_id).where(pr.c.cell_id.in_(list(cell_ids))).distinct().subquery()
    query = (
        sa.select(*[t.c[k] for k in PROBLEM_SCHEMA])
        .join(done, sa.and_(done.c.dataset == t.c.dataset, done.c.problem_id == t.c.problem_id))
        .order_by(t.c.dataset, t.c.problem_id)
    )
    return query_frame(db, query, PROBLEM_SCHEMA)


def read_nodes(db: Connection | Session | Engine, cell_id: str, problem_id: str) -> pl.DataFrame:
    """One problem's search tree, one row per node in node_id order (parent_id null at roots)."""
    t = schema.nodes
    query = (
        sa.select(*[t.c[k] for k in NODE_SCHEMA])
        .where(t.c.cell_id == cell_id, t.c.problem_id == encode_text(problem_id))
        .order_by(t.c.node_id)
    )
    return query_frame(db, query, NODE_SCHEMA)


def read_nodes_of_cells(db: Connection | Session | Engine, cell_ids: Sequence[str]) -> pl.DataFrame:
    """Every node of `cell_ids` (export; trees can be large)."""
    t = schema.nodes
    query = (
        sa.select(*[t.c[k] for k in NODE_SCHEMA])
        .where(t.c.cell_id.in_(list(cell_ids)))
        .order_by(t.c.cell_id, t.c.problem_id, t.c.node_id)
    )
    return query_frame(db, query, NODE_SCHEMA)


def read_verdicts(db: Connection | Session | Engine, cell_ids: Sequence[str], source: str | None = None) -> pl.DataFrame:
    """Selection verdicts of `cell_ids` (of one `source`, `ttscale` or `published`, or all):
    one row per (problem, source, method, n)."""
    t = schema.verdicts
    query = (
        sa.select(*[t.c[k] for k in VERDICT_SCHEMA])
        .where(t.c.cell_id.in_(list(cell_ids)))
        .order_by(t.c.cell_id, t.c.problem_id, t.c.source, t.c.method, t.c.n)
    )
    if source is not None:
        query = query.where(t.c.source == source)
    return query_frame(db, query, VERDICT_SCHEMA)


def read_problem_result(db: Connection | Session | Engine, cell_id: str, problem_id: str) -> ProblemResult:
    """Rebuild the `ProblemResult` stored for one problem of one cell, exactly (text with
    NUL or lone surrogates included, which frames cannot hold). StoreError if absent."""
    conn, opened = _conn(db)
    try:
        return _problem_result(conn, cell_id, problem_id)
    finally:
        if opened:
            conn.close()


def _problem_result(conn: Connection, cell_id: str, problem_id: str) -> ProblemResult:
    pid = encode_text(problem_id)
    pr = schema.problem_runs
    run = conn.execute(sa.select(pr).where(pr.c.cell_id == cell_id, pr.c.problem_id == pid)).mappings().first()
    if run is None:
        raise StoreError(f"no stored result for problem {problem_id!r} in cell {cell_id!r}")
    n, c = schema.nodes, schema.candidates
    node_rows = conn.execute(sa.select(n).where(n.c.cell_id == cell_id, n.c.problem_id == pid).order_by(n.c.node_id))
    nodes = [
        Node(
            id=row.node_id,
            parent=row.parent_id,
            depth=row.depth,
            text=decode_text(row.text),
            kind=row.kind,
            n_prompt_tokens=row.n_prompt_tokens,
            n_generated_tokens=row.n_generated_tokens,
            n_lookahead_tokens=row.n_lookahead_tokens,
            n_cached_prompt_tokens=row.n_cached_prompt_tokens,
            scores=decode_floats(row.scores),
            n_verifier_tokens=row.n_verifier_tokens,
            finish_reason=row.finish_reason,
            selected=bool(row.selected),
            pruned=bool(row.pruned),
            weight=row.weight,
        )
        for row in node_rows
    ]
    cand_rows = conn.execute(sa.select(c).where(c.c.cell_id == cell_id, c.c.problem_id == pid).order_by(c.c.idx))
    candidates = [
        Candidate(
            index=row.idx,
            text=decode_text(row.text),
            leaf=row.leaf_node,
            step_scores=decode_floats(row.step_scores),
            score=row.score,
            n_prompt_tokens=row.n_prompt_tokens,
            n_generated_tokens=row.n_generated_tokens,
            finish_reason=row.finish_reason,
            answer=decode_text(row.answer),
            correct=None if row.correct is None else bool(row.correct),
            answer_method=row.answer_method,
            answer_class=row.answer_class,
        )
        for row in cand_rows
    ]
    return ProblemResult(
        problem_id=decode_text(run["problem_id"]),
        nodes=nodes,
        candidates=candidates,
        n_prompt_tokens=run["n_prompt_tokens"],
        n_prompt_tokens_computed=run["n_prompt_tokens_computed"],
        n_generated_tokens=run["n_generated_tokens"],
        n_verifier_tokens=run["n_verifier_tokens"],
        n_policy_calls=run["n_policy_calls"],
    )
