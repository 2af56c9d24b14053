"""Store write throughput on PostgreSQL: the project's writer (COPY) vs SQLAlchemy Core executemany.

    python benchmarks/store_write.py [--rows 1000000] [--smoke] [--db URL] [--repeats 3]

Writes N node rows (one shard: N/1000 problems of 1000-node search trees) through
`store.write_shard`, and the same rows through a plain `conn.execute(nodes.insert(), dicts)`,
each in its own transaction, into a freshly migrated database. Both sides are measured in
the same run: one warm-up each, then the median of `--repeats` runs, tables truncated between
runs. The baseline's dicts are built before its clock starts; the writer's clock includes
turning the dataclasses into rows — so the ratio, if anything, favours the baseline.

It also times reading N candidate rows back into polars (`store.read_candidates`) against
`pl.read_database` on the same query.

Without --db it starts a throwaway PostgreSQL 15 server (as the `postgres` user when run as
root: initdb refuses root). Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import _common as c
import polars as pl
import psycopg
import sqlalchemy as sa

from ttscale import store
from ttscale.spec import CellSpec, DatasetSpec
from ttscale.strategy_params import BestOfNParams
from ttscale.store import schema
from ttscale.tree import Candidate, Node, Problem, ProblemResult, ShardOutcome

NODES_PER_PROBLEM = 1000
PG_BIN = Path(os.environ.get("TTSCALE_PG_BIN", "/usr/lib/postgresql/15/bin"))


# ---- a throwaway server ------------------------------------------------------------------------


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """initdb + pg_ctl start on a free port; yields the admin URL; stops and deletes on exit."""
    base = Path(tempfile.mkdtemp(prefix="ttscale-bench-pg-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    run = lambda *cmd: subprocess.run(_as_postgres(*cmd), check=True, capture_output=True)  # noqa: E731
    try:
        run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        # Default durability settings: the figures are what a real store would see.
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
            "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[sa.Engine]:
    """A new database, migrated to head; dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    url = sa.make_url(admin_url)
    conninfo = dict(host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database or "postgres")
    with psycopg.connect(**conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = store.make_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        store.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(**conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# ---- data --------------------------------------------------------------------------------------


def make_cell() -> CellSpec:
    return CellSpec(model="bench-1b", verifier="arithmetic", strategy=BestOfNParams(), n=4, dataset=DatasetSpec(name="arith"))


def make_outcome(cell_id: str, n_rows: int, *, candidates: bool) -> ShardOutcome:
    """N nodes (or N candidates) spread over problems of NODES_PER_PROBLEM each, with
    realistic step texts (~120 chars of LaTeX) and scores."""
    step = "We have $x^2 - 5x + 6 = 0$, so \\((x-2)(x-3) = 0\\) and therefore $x \\in \\{2, 3\\}$.\n\n"
    n_problems = max(1, n_rows // NODES_PER_PROBLEM)
    problems, results = [], []
    for p in range(n_problems):
        problems.append(Problem("bench", f"p{p:06d}", "Solve $x^2 - 5x + 6 = 0$.", "2, 3", 3, "Algebra"))
        k = NODES_PER_PROBLEM if p < n_problems - 1 else n_rows - NODES_PER_PROBLEM * (n_problems - 1)
        if candidates:
            nodes = [Node(0, None, 0, step, "completion", 80, 40)]
            cands = [Candidate(i, step, 0, (0.5, 0.25), 0.25, 80, 40, "eos", "3", i % 3 == 0, "boxed", i % 4) for i in range(k)]
        else:
            nodes = [Node(i, None if i == 0 else (i - 1) // 4, 0 if i == 0 else 1, step, "step", 200 + i, 32, 0, (0.5,), 40)
                     for i in range(k)]
            for n in nodes[1:]:
                n.depth = nodes[n.parent].depth + 1
            cands = []
        results.append(ProblemResult(f"p{p:06d}", nodes, cands, n_prompt_tokens=80, n_generated_tokens=32 * k))
    return ShardOutcome(cell_id, problems, results, [], policy_params=1_235_814_400, verifier_params=0, elapsed_s=1.0)


# ---- the two sides -----------------------------------------------------------------------------


def reset(engine: sa.Engine) -> None:
    with store.transaction(engine) as conn:
        conn.execute(sa.text("TRUNCATE nodes, candidates, verdicts, problem_runs"))


def time_writer(engine: sa.Engine, outcome: ShardOutcome) -> float:
    reset(engine)
    start = time.perf_counter()
    with store.transaction(engine) as conn:
        report = store.write_shard(conn, outcome)
    elapsed = time.perf_counter() - start
    assert report.n_written_problems == len(outcome.problems)
    return elapsed


def baseline_rows(outcome: ShardOutcome) -> tuple[list[dict], list[dict]]:
    """The same problem_runs and node rows as dicts, for Core executemany."""
    from ttscale.store.writer import _node_rows, _problem_run_row

    now = schema.utcnow()
    runs = [_problem_run_row(outcome.cell_id, p.dataset, r, outcome, 0.0, now) for p, r in zip(outcome.problems, outcome.results)]
    keys = [c.key for c in schema.nodes.columns]
    nodes = [dict(zip(keys, row)) for row in _node_rows(outcome.cell_id, outcome.results)]
    return runs, nodes


def time_executemany(engine: sa.Engine, runs: list[dict], nodes: list[dict]) -> float:
    reset(engine)
    start = time.perf_counter()
    with store.transaction(engine) as conn:
        conn.execute(schema.problem_runs.insert(), runs)
        conn.execute(schema.nodes.insert(), nodes)
    return time.perf_counter() - start


def median_of(fn: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = [fn() for _ in range(repeats)]
    return statistics.median(times), times


def time_reads(engine: sa.Engine, cell_id: str, repeats: int) -> dict[str, float]:
    t = schema.candidates
    from ttscale.store.read import CANDIDATE_SCHEMA

    query = sa.select(*[t.c[k] for k in CANDIDATE_SCHEMA]).where(t.c.cell_id.in_([cell_id])).order_by(t.c.cell_id, t.c.problem_id, t.c.idx)

    def ours() -> float:
        with engine.connect() as conn:
            start = time.perf_counter()
            store.read_candidates(conn, [cell_id])
            return time.perf_counter() - start

    def polars_sqlalchemy() -> float:
        with engine.connect() as conn:
            start = time.perf_counter()
            pl.read_database(query, conn)
            return time.perf_counter() - start

    return {"read_candidates": median_of(ours, repeats)[0], "pl.read_database": median_of(polars_sqlalchemy, repeats)[0]}


# ---- report ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="node rows per write (default 1,000,000)")
    parser.add_argument("--smoke", action="store_true", help="20,000 rows, 1 repeat: a CI check that it runs")
    parser.add_argument("--db", help="admin URL of an existing PostgreSQL server (default: start a throwaway one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    rows, repeats = (20_000, 1) if args.smoke else (args.rows, args.repeats)
    machine = c.store_machine_line(c.load_avg())

    with (contextlib.nullcontext(args.db) if args.db else throwaway_server()) as admin_url, fresh_database(admin_url) as engine:
        with engine.connect() as conn:
            server = conn.exec_driver_sql("SHOW server_version").scalar()
        cell = make_cell()
        with store.transaction(engine) as conn:
            store.register_cell(conn, cell)
        outcome = make_outcome(cell.cell_id, rows, candidates=False)
        runs, node_dicts = baseline_rows(outcome)
        writer_s, writer_all = median_of(lambda: time_writer(engine, outcome), repeats)
        many_s, many_all = median_of(lambda: time_executemany(engine, runs, node_dicts), repeats)
        del runs, node_dicts, outcome

        reset(engine)
        with store.transaction(engine) as conn:
            store.write_shard(conn, make_outcome(cell.cell_id, rows, candidates=True))
        reads = time_reads(engine, cell.cell_id, repeats)

    ratio = many_s / writer_s
    figures = [
        f"writer (COPY): {rows / writer_s:,.0f} rows/s (median {writer_s:.2f} s; runs {', '.join(f'{t:.2f}' for t in writer_all)})",
        f"Core executemany: {rows / many_s:,.0f} rows/s (median {many_s:.2f} s; runs {', '.join(f'{t:.2f}' for t in many_all)})",
        f"ratio writer / executemany: {ratio:.1f}x (target >= 4x)",
        f"read {rows:,} candidates: store.read_candidates {reads['read_candidates']:.2f} s, "
        f"pl.read_database {reads['pl.read_database']:.2f} s "
        f"({reads['pl.read_database'] / reads['read_candidates']:.1f}x)",
    ]
    for line in figures:
        print(line)
    if not args.no_record:
        command = "python benchmarks/store_write.py " + " ".join(argv if argv is not None else sys.argv[1:])
        record(command.strip(), rows, repeats, server, machine, figures)
    return 0


def record(command: str, rows: int, repeats: int, server: str, machine: str, figures: list[str]) -> None:
    c.append_section("store_write", [
        *c.store_provenance_lines(command, machine, server, ("sqlalchemy", "psycopg", "polars", "alembic")),
        f"- rows: {rows:,} nodes per write; median of {repeats} after a warm-up",
        *[f"- {line}" for line in figures],
    ])


if __name__ == "__main__":
    sys.exit(main())
