"""Load: concurrent shard writers (processes) into one PostgreSQL store, through the real writer.

    python benchmarks/concurrent_writers.py [--writers 8] [--nodes 1000000] [--db ADMIN_URL] [--smoke] [--no-record]

W writer processes write the shards of C cells (default 4: two writers per cell, so they
contend for the cell's totals row and the `problem_runs` key) over one shared problem set
(every cell writes the same problems: all writers insert-if-absent into `problems`), each shard
in its own transaction with `store.write_shard` — the code path of a shard task (COPY on
PostgreSQL). Every problem is a 100-node search tree with 4 candidates and 8 verdicts. Each
writer also resubmits some shards that belong to another writer of its cell (a retried shard
racing the original), which must be skipped whole. All writers start together (a barrier) and
must finish within a deadline (no deadlock, no hang). Afterwards the store is checked by
natural key: every (cell, problem) of the plan stored exactly once with all its nodes,
candidates and verdicts, nothing else stored, each cell's token totals equal to the sum of
its stored problems, and the writers' reports agree (written + skipped = submitted).

Without --db it starts a throwaway PostgreSQL server (benchmarks/store_write.py). Figures
(wall time, rows/s, per-shard latency) are appended to benchmarks/RESULTS.md unless
--no-record. `tests/load/test_concurrent_writers.py` runs the same code at 8 × 20,000 nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import statistics
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _common as c

RESULTS = c.RESULTS
DATASET = "bench-load"
NODES_PER_PROBLEM = 100
CANDIDATES_PER_PROBLEM = 4
VERDICTS_PER_PROBLEM = 8  # naive, weighted, majority, pass at n = 2 and 4
STEP = "We have $x^2 - 5x + 6 = 0$, so \\((x-2)(x-3) = 0\\) and therefore $x \\in \\{2, 3\\}$.\n\n"


@dataclass(frozen=True)
class Plan:
    """Which shards exist and who submits them."""

    n_writers: int
    n_cells: int
    n_problems: int
    """Problems per cell (every cell writes the same problem ids)."""
    shard_problems: int
    resubmit_every: int
    """Each writer resubmits every k-th shard of its cell partner (0: none)."""

    @property
    def shards(self) -> list[tuple[int, int]]:
        """(cell index, first problem) of every shard, cell-major."""
        return [(c, p) for c in range(self.n_cells) for p in range(0, self.n_problems, self.shard_problems)]

    def owned(self, writer: int) -> list[tuple[int, int]]:
        """The shards writer `w` owns: its cell's shards, split round-robin among that cell's writers."""
        cell = writer % self.n_cells
        mates = [w for w in range(self.n_writers) if w % self.n_cells == cell]
        mine = mates.index(writer)
        own = [s for s in self.shards if s[0] == cell]
        return own[mine :: len(mates)]

    def resubmitted(self, writer: int) -> list[tuple[int, int]]:
        """Shards of the next writer of the same cell that `writer` submits again."""
        if not self.resubmit_every:
            return []
        cell = writer % self.n_cells
        mates = [w for w in range(self.n_writers) if w % self.n_cells == cell]
        if len(mates) < 2:
            return []
        other = mates[(mates.index(writer) + 1) % len(mates)]
        return self.owned(other)[:: self.resubmit_every]

    def submitted(self, writer: int) -> list[tuple[int, int]]:
        """Owned and resubmitted shards interleaved, so a resubmission can race the original."""
        own, again = self.owned(writer), self.resubmitted(writer)
        out, k = [], max(1, len(own) // max(1, len(again))) if again else 0
        for i, shard in enumerate(own):
            out.append(shard)
            if again and i % k == k - 1 and again:
                out.append(again.pop(0))
        return out + again


def plan_for(n_writers: int, n_nodes: int, n_cells: int = 4, shard_problems: int = 20, resubmit_every: int = 5) -> Plan:
    n_cells = min(n_cells, n_writers)
    problems_total = -(-n_nodes // NODES_PER_PROBLEM)
    per_cell = -(-problems_total // n_cells)
    return Plan(n_writers, n_cells, per_cell, shard_problems, resubmit_every)


# ---- data --------------------------------------------------------------------------------------


def cell_spec(i: int):
    from ttscale.spec import CellSpec, DatasetSpec
    from ttscale.strategy_params import BeamSearchParams

    return CellSpec(model="bench-1b", verifier="arithmetic", strategy=BeamSearchParams(beam_width=2, n_iterations=10),
                    n=4, dataset=DatasetSpec(name="jsonl", path=DATASET), seed=i)  # fmt: skip


def problem_id(p: int) -> str:
    return f"p{p:07d}"


def shard_outcome(cell_id: str, first: int, count: int, seed: int):
    """`count` problems from `first`: 100-node trees (node i's parent is (i-1)//4), 4 candidates,
    8 verdicts each; token counts vary with the writer's seed so totals are checkable."""
    from ttscale.tree import Candidate, Node, Problem, ProblemResult, ShardOutcome, Verdict

    problems, results, verdicts = [], [], []
    for p in range(first, first + count):
        pid = problem_id(p)
        problems.append(Problem(DATASET, pid, f"Solve $x^2 - 5x + {p} = 0$.", "2, 3", 1 + p % 5, "Algebra"))
        nodes = []
        for i in range(NODES_PER_PROBLEM):
            parent = None if i == 0 else (i - 1) // 4
            depth = 0 if parent is None else nodes[parent].depth + 1
            nodes.append(Node(i, parent, depth, STEP, "step", 200 + i, 32, 0, (0.5, (i % 7) / 7), 40, "step"))
        leaves = list(range(NODES_PER_PROBLEM - CANDIDATES_PER_PROBLEM, NODES_PER_PROBLEM))
        cands = [Candidate(k, STEP * 3, leaf, (0.5, 0.25), 0.25, 80, 96, "eos", "3", k % 2 == 0, "boxed", k % 2)
                 for k, leaf in enumerate(leaves)]  # fmt: skip
        generated = 32 * NODES_PER_PROBLEM + seed  # differs per cell: a double count would show
        results.append(ProblemResult(pid, nodes, cands, n_prompt_tokens=80, n_generated_tokens=generated, n_verifier_tokens=40, n_policy_calls=3))
        for n in (2, 4):
            verdicts += [Verdict(pid, m, n, "3", True) for m in ("naive", "weighted", "majority")]
            verdicts.append(Verdict(pid, "pass", n, None, True))
    return ShardOutcome(cell_id, problems, results, verdicts, policy_params=1_235_814_400, verifier_params=0, elapsed_s=1.0)


# ---- the writers ---------------------------------------------------------------------------------


@dataclass
class WriterReport:
    writer: int
    shards: int = 0
    written_problems: int = 0
    skipped_problems: int = 0
    rows: int = 0
    seconds: float = 0.0
    shard_seconds: list[float] = field(default_factory=list)
    """Per shard: building its rows, writing them and committing."""
    write_seconds: list[float] = field(default_factory=list)
    """Per shard: the transaction alone (write_shard + commit), lock waits included."""
    error: str | None = None


def writer_main(writer: int, url: str, plan: Plan, cell_ids: list[str], barrier, results) -> None:
    """One writer process: wait for the others, then write its shards, one transaction each."""
    report = WriterReport(writer)
    try:
        from ttscale import store

        engine = store.make_engine(url)
        work = [(cell_ids[c], first, min(plan.shard_problems, plan.n_problems - first), c) for c, first in plan.submitted(writer)]
        # Connected, and the writer's modules imported, before the clock starts (an import
        # inside the first transaction would count as lock time on a busy machine).
        with engine.connect():
            pass
        import ttscale.store.bulk
        import ttscale.store.writer  # noqa: F401
        shard_outcome(cell_ids[0], 0, 1, seed=0)
        barrier.wait(timeout=600)
        start = time.perf_counter()
        for cell_id, first, count, c in work:
            t0 = time.perf_counter()
            outcome = shard_outcome(cell_id, first, count, seed=c)
            t1 = time.perf_counter()
            with store.transaction(engine) as conn:
                got = store.write_shard(conn, outcome)
            t2 = time.perf_counter()
            report.shard_seconds.append(t2 - t0)
            report.write_seconds.append(t2 - t1)
            report.shards += 1
            report.written_problems += got.n_written_problems
            report.skipped_problems += got.n_skipped_problems
            report.rows += got.n_rows
        report.seconds = time.perf_counter() - start
        engine.dispose()
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which fails the run
        report.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}\n{traceback.format_exc()[-2000:]}"
    results.put(asdict(report))


def write_until_stopped(url: str, cell_id: str, seed: int, stop, written) -> None:
    """A writer for other load tests (a sweep writing while the dashboard is read): shards of
    20 fresh problems into `cell_id`, one transaction each, until `stop` (an Event) is set;
    `written` (a shared Value) counts the problems stored."""
    from ttscale import store

    engine = store.make_engine(url)
    first = seed * 10_000_000
    try:
        while not stop.is_set():
            outcome = shard_outcome(cell_id, first, 20, seed=seed)
            with store.transaction(engine) as conn:
                report = store.write_shard(conn, outcome)
            with written.get_lock():
                written.value += report.n_written_problems
            first += 20
    finally:
        engine.dispose()


@dataclass
class LoadResult:
    plan: Plan
    writers: list[dict]
    wall_s: float
    counts: dict[str, int]
    expected: dict[str, int]
    problems_rows: int
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures

    def shard_latencies(self, key: str = "shard_seconds") -> list[float]:
        return sorted(t for w in self.writers for t in w[key])


def register(url: str, plan: Plan) -> list[str]:
    """The sweep and its cells (what `register_plan` does before shards run)."""
    from ttscale import store
    from ttscale.spec import SweepSpec

    cells = [cell_spec(i) for i in range(plan.n_cells)]
    engine = store.make_engine(url)
    try:
        with store.transaction(engine) as conn:
            spec = SweepSpec.model_validate({
                "name": f"bench-concurrent-{plan.n_writers}x{plan.n_problems}", "models": ["bench-1b"], "verifiers": ["arithmetic"],
                "strategies": [{"name": "beam_search", "beam_width": 2, "n_iterations": 10}], "budgets": [4],
                "datasets": [{"name": "jsonl", "path": DATASET}], "seeds": list(range(plan.n_cells)),
            })  # fmt: skip
            sweep_id = store.register_sweep(conn, spec, spec.model_dump_json(), "benchmarks/concurrent_writers.py")
            for cell in cells:
                store.register_cell(conn, cell, sweep_id=sweep_id, policy_params=1_235_814_400)
                store.set_cell_status(conn, cell.cell_id, "running")
    finally:
        engine.dispose()
    return [c.cell_id for c in cells]


def run_load(url: str, plan: Plan, *, deadline_s: float = 1800.0) -> LoadResult:
    """Register the cells, run the writers, check the store. `url`: an empty migrated store."""
    cell_ids = register(url, plan)
    ctx = mp.get_context("spawn")  # no inherited connections, threads or locks
    barrier = ctx.Barrier(plan.n_writers + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=writer_main, args=(w, url, plan, cell_ids, barrier, results), name=f"writer-{w}") for w in range(plan.n_writers)]
    for proc in procs:
        proc.start()
    failures: list[str] = []
    try:
        barrier.wait(timeout=600)  # every writer connected
    except Exception as err:  # noqa: BLE001
        failures.append(f"writers did not start: {type(err).__name__}")
    start = time.perf_counter()
    reports: list[dict] = []
    end_by = time.monotonic() + deadline_s
    while len(reports) < plan.n_writers and time.monotonic() < end_by:
        with contextlib.suppress(Exception):
            reports.append(results.get(timeout=1.0))
        if len(reports) < plan.n_writers and all(not p.is_alive() for p in procs):
            with contextlib.suppress(Exception):
                while True:
                    reports.append(results.get(timeout=2.0))
            break
    wall = time.perf_counter() - start
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            failures.append(f"{proc.name} still running after the deadline: hang or deadlock")
            proc.kill()
            proc.join(timeout=30)
    if len(reports) < plan.n_writers:
        failures.append(f"only {len(reports)} of {plan.n_writers} writers reported within {deadline_s:.0f} s")
    failures += [f"writer {r['writer']} failed: {r['error']}" for r in reports if r["error"]]
    reports.sort(key=lambda r: r["writer"])
    counts, problems_rows, check_failures = check_store(url, plan, cell_ids, reports)
    failures += check_failures
    expected = expected_counts(plan)
    return LoadResult(plan, reports, wall, counts, expected, problems_rows, failures)


def expected_counts(plan: Plan) -> dict[str, int]:
    stored = plan.n_cells * plan.n_problems
    return {
        "problem_runs": stored,
        "nodes": stored * NODES_PER_PROBLEM,
        "candidates": stored * CANDIDATES_PER_PROBLEM,
        "verdicts": stored * VERDICTS_PER_PROBLEM,
    }


KEYS = {
    "problem_runs": "cell_id, problem_id",
    "nodes": "cell_id, problem_id, node_id",
    "candidates": "cell_id, problem_id, idx",
    "verdicts": "cell_id, problem_id, method, n",
}


def check_store(url: str, plan: Plan, cell_ids: list[str], reports: list[dict]) -> tuple[dict[str, int], int, list[str]]:
    """Counts by natural key against the plan; the writers' reports against the store."""
    import sqlalchemy as sa

    from ttscale import store

    failures = []
    expected = expected_counts(plan)
    engine = store.make_engine(url)
    counts: dict[str, int] = {}
    try:
        with engine.connect() as conn:
            q = lambda sql: conn.execute(sa.text(sql)).scalar_one()  # noqa: E731 - fixed statements, no user input
            for table, key in KEYS.items():
                counts[table] = q(f"SELECT count(*) FROM {table}")
                distinct = q(f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table}) AS k")
                if counts[table] != expected[table] or distinct != counts[table]:
                    failures.append(f"{table}: {counts[table]} rows, {distinct} distinct keys, expected {expected[table]}")
            problems_rows = q("SELECT count(*) FROM problems")
            if problems_rows != plan.n_problems:
                failures.append(f"problems: {problems_rows} rows, expected {plan.n_problems} (shared by every cell)")
            stored = set(conn.execute(sa.text("SELECT cell_id, problem_id FROM problem_runs")).all())
            wanted = {(cell_ids[c], problem_id(p)) for c in range(plan.n_cells) for p in range(plan.n_problems)}
            if stored != wanted:
                failures.append(f"problem_runs: {len(wanted - stored)} lost, {len(stored - wanted)} unexpected")
            # Every stored problem whole: its node, candidate and verdict counts.
            partial = q(
                f"SELECT count(*) FROM (SELECT cell_id, problem_id, count(*) AS k FROM nodes GROUP BY cell_id, problem_id) AS t WHERE k <> {NODES_PER_PROBLEM}"
            )
            if partial:
                failures.append(f"nodes: {partial} problems with a partial tree")
            totals = conn.execute(sa.text(
                "SELECT c.id, c.n_generated_tokens, coalesce(sum(r.n_generated_tokens), 0) FROM cells c "
                "LEFT JOIN problem_runs r ON r.cell_id = c.id GROUP BY c.id, c.n_generated_tokens"
            )).all()  # fmt: skip
            for cell_id, total, summed in totals:
                if total != summed:
                    failures.append(f"cell {cell_id}: totals {total} generated tokens, its problems sum to {summed}")
    finally:
        engine.dispose()
    submitted = sum(min(plan.shard_problems, plan.n_problems - first) for w in range(plan.n_writers) for _, first in plan.submitted(w))
    written = sum(r["written_problems"] for r in reports)
    skipped = sum(r["skipped_problems"] for r in reports)
    if len(reports) == plan.n_writers and not any(r["error"] for r in reports):
        if written != expected["problem_runs"] or written + skipped != submitted:
            failures.append(f"writer reports: {written} written + {skipped} skipped, expected {expected['problem_runs']} + {submitted - expected['problem_runs']}")
    return counts, problems_rows, failures


# ---- a throwaway server --------------------------------------------------------------------------


@contextlib.contextmanager
def migrated_database(admin_url: str | None) -> Iterator[str]:
    """A fresh migrated database on `admin_url`'s server (or a throwaway server); its URL."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from store_write import fresh_database, throwaway_server

    with (contextlib.nullcontext(admin_url) if admin_url else throwaway_server()) as admin, fresh_database(admin) as engine:
        yield engine.url.render_as_string(hide_password=False)


# ---- report --------------------------------------------------------------------------------------


def figures(result: LoadResult) -> list[str]:
    lat = result.shard_latencies()
    txn = result.shard_latencies("write_seconds")
    total_rows = sum(result.counts.values())
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
    plan = result.plan
    per_writer = ", ".join(f"{w['seconds']:.1f}" for w in result.writers)
    return [
        f"writers: {plan.n_writers} processes, {plan.n_cells} cells ({plan.n_writers // plan.n_cells} writers each), "
        f"{plan.n_problems:,} problems per cell, {plan.shard_problems} problems per shard, every {plan.resubmit_every}th shard of a partner resubmitted",
        f"stored: {result.counts['nodes']:,} nodes, {result.counts['candidates']:,} candidates, {result.counts['verdicts']:,} verdicts, "
        f"{result.counts['problem_runs']:,} problem runs ({total_rows:,} rows); {result.problems_rows:,} shared problems",
        f"shards: {sum(w['shards'] for w in result.writers):,} transactions, {sum(w['written_problems'] for w in result.writers):,} problems written, "
        f"{sum(w['skipped_problems'] for w in result.writers):,} skipped (resubmissions)",
        f"wall time: **{result.wall_s:.1f} s** (barrier to last writer); per writer {per_writer} s",
        f"throughput: **{result.counts['nodes'] / result.wall_s:,.0f} node rows/s**, {total_rows / result.wall_s:,.0f} rows/s of all bulk tables",
        f"shard latency (generate + write + commit, {plan.shard_problems * NODES_PER_PROBLEM:,} nodes): median {statistics.median(lat):.2f} s, p95 {p95:.2f} s, max {lat[-1]:.2f} s"
        if lat else "shard latency: none",
        f"of which the transaction (write_shard + commit, lock waits included): median {statistics.median(txn):.2f} s, "
        f"p95 {txn[min(len(txn) - 1, int(0.95 * len(txn)))]:.2f} s, max {txn[-1]:.2f} s" if txn else "transactions: none",
        "checks: " + ("no deadlock or hang, no lost or duplicate rows by natural key, cell totals equal their problems' sums, reports agree"
                      if result.ok else "FAILED: " + "; ".join(result.failures)),  # fmt: skip
    ]


git_sha = c.git_sha  # these two and RESULTS: also used by tests/load
machine = c.store_machine_line


def record(command: str, result: LoadResult, server: str, load: tuple[float, float, float]) -> None:
    c.append_section("concurrent_writers", [
        *c.store_provenance_lines(command, f"{machine(load)}; load avg {c.fmt_load(c.load_avg())} at the end", server,
                                  ("sqlalchemy", "psycopg", "polars")),
        *[f"- {line}" for line in figures(result)],
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=1_000_000, help="node rows in total (default 1,000,000)")
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--shard-problems", type=int, default=20, help=f"problems per shard ({NODES_PER_PROBLEM} nodes each)")
    parser.add_argument("--db", help="admin URL of an existing PostgreSQL server (default: start a throwaway one)")
    parser.add_argument("--smoke", action="store_true", help="8 x 5,000 nodes: a check that it runs")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    nodes = 40_000 if args.smoke else args.nodes
    plan = plan_for(args.writers, nodes, args.cells, args.shard_problems)
    load = os.getloadavg()
    with migrated_database(args.db) as url:
        server = c.server_version(url)
        result = run_load(url, plan)
    for line in figures(result):
        print(line)
    if not args.no_record:
        command = "python benchmarks/concurrent_writers.py " + " ".join(a if "://" not in a else "postgresql+psycopg://…" for a in (argv if argv is not None else sys.argv[1:]))
        record(command.strip(), result, server, load)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
