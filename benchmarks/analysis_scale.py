"""Benchmark: the whole `ttscale report` analysis at the reference's scale, read from the store.

    python benchmarks/analysis_scale.py [--smoke] [--db URL] [--repeat 3] [--no-record]

Builds (once per store; reused when present) a synthetic sweep of 500 problems × 256
candidates × 3 strategies (best_of_n, dvts, beam_search) × 5 seeds × 2 models — 3.84M
candidates with verifier scores (`benchmarks/synthetic_sweep.py`) — bulk-loaded straight into
the store's tables (COPY on PostgreSQL, executemany on SQLite). Then, each in a fresh
process so its peak memory is its own:

- `report`: `ttscale report`'s path — read cells, candidates, problem runs and problems
  from the store and build every table (accuracy at every n for every selection method,
  oracle bins, compute-optimal frontiers per n and per FLOPs, model comparison); a warm-up
  run, then `--repeat` timed runs, median reported;
- `compare`: on the candidates read once, the polars selection (`select_verdicts`, every
  budget and method) against a per-row Python map in the reference's style (one Python call
  per problem row, `ttscale.selection.select` per budget and method), same data, same
  process; both checked to agree, ratio recorded.

Figures are appended to benchmarks/RESULTS.md (date, machine, git sha, versions, command).
`--smoke` runs a tiny size for CI. Default store: a temporary SQLite file; pass a
PostgreSQL URL for the team-store figure (the store must be empty or hold only this
benchmark's data; it is upgraded to the current schema first).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import _common as c

SIZES = {
    "full": {"n_problems": 500, "n": 256, "seeds": (0, 1, 2, 3, 4)},
    "smoke": {"n_problems": 40, "n": 16, "seeds": (0, 1)},
}
STRATEGIES = ("best_of_n", "dvts", "beam_search")
DATASET = "synthetic-math"


def sweep_spec(size: str):
    from synthetic_sweep import DEFAULT_MODELS
    from ttscale.spec import DatasetSpec, SweepSpec
    from ttscale.strategy_params import BeamSearchParams, BestOfNParams, DVTSParams

    cfg = SIZES[size]
    return SweepSpec(
        name=f"bench-analysis-{size}",
        models=[m.name for m in DEFAULT_MODELS],
        verifiers=["synthetic_prm"],
        strategies=[BestOfNParams(), DVTSParams(), BeamSearchParams()],
        budgets=[cfg["n"]],
        datasets=[DatasetSpec(name=DATASET)],
        seeds=list(cfg["seeds"]),
    )


# ---- building the store ---------------------------------------------------------------------


def ensure_data(url: str, size: str) -> tuple[str, dict]:
    """The benchmark sweep's id, generating and loading it when the store lacks it."""
    import polars as pl

    from ttscale import store

    spec = sweep_spec(size)
    engine = store.make_engine(url, create_dirs=True)
    store.upgrade(engine)
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, spec, spec.model_dump_json(), "benchmarks/analysis_scale.py")
    with store.connect(engine) as conn:
        have = store.read_cells(conn, sweep_id=sweep_id)
    n_cells = len(spec.models) * len(STRATEGIES) * len(spec.seeds)
    if have.height == n_cells and int(have["n_problems_done"].sum()) == n_cells * SIZES[size]["n_problems"]:
        return sweep_id, {"generated": False}

    from synthetic_sweep import synthetic_sweep

    cfg = SIZES[size]
    t0 = time.perf_counter()
    sweep = synthetic_sweep(n_problems=cfg["n_problems"], n=cfg["n"], strategies=STRATEGIES, seeds=cfg["seeds"], dataset=DATASET)
    generated_s = time.perf_counter() - t0
    from ttscale.spec import CellSpec

    t0 = time.perf_counter()
    with store.transaction(engine) as conn:
        for row in sweep.cells.iter_rows(named=True):
            cell = CellSpec.model_validate_json(row["spec"])
            store.register_cell(conn, cell, sweep_id=sweep_id, policy_params=row["policy_params"],
                                verifier_params=row["verifier_params"])  # fmt: skip
        _load(conn, sweep, cfg["n"])
        for cell_id in sweep.cells["cell_id"].to_list():
            store.set_cell_status(conn, cell_id, "done")
    loaded_s = time.perf_counter() - t0
    engine.dispose()
    return sweep_id, {
        "generated": True,
        "generate_s": round(generated_s, 1),
        "load_s": round(loaded_s, 1),
        "n_candidates": sweep.candidates.height,
    }


def _load(conn, sweep, n_candidates: int) -> None:
    """Problems, problem runs and candidates, bulk, in the store's column order."""
    import polars as pl

    from ttscale.store import schema

    now = datetime.now(UTC)
    problems = sweep.problems.select(
        "dataset", "problem_id", pl.format("Synthetic problem {}", pl.col("problem_id")).alias("text"),
        "answer", "level", "subject", pl.lit("{}").alias("metadata"),
    )  # fmt: skip
    runs = sweep.runs.with_columns(
        pl.lit(DATASET).alias("dataset"),
        pl.lit(1).alias("n_policy_calls"),
        pl.lit(n_candidates).alias("n_candidates"),
        pl.lit(0).alias("n_nodes"),
        pl.lit(now).alias("written_at"),
        # synthetic runs have no prefix cache: every prompt token is computed
        pl.col("n_prompt_tokens").alias("n_prompt_tokens_computed"),
        pl.col("policy_flops").alias("policy_flops_computed"),
    )
    for table, frame in ((schema.problems, problems), (schema.problem_runs, runs)):
        rows = frame.select([c.name for c in table.columns]).rows()
        conn.execute(table.insert(), [dict(zip([c.key for c in table.columns], r, strict=True)) for r in rows])
    candidates = sweep.candidates.with_columns(
        pl.lit("(synthetic)").alias("text"),
        pl.when(pl.col("answer").is_null()).then(None).otherwise(pl.lit("boxed")).alias("answer_method"),
        pl.format("[{}]", pl.col("score")).alias("step_scores"),
        pl.lit("eos").alias("finish_reason"),
        pl.col("idx").alias("leaf_node"),
        pl.col("policy_flops").alias("policy_flops_computed"),
    ).select([c.name for c in schema.candidates.columns])
    if conn.dialect.name == "postgresql":
        _copy_csv(conn, "candidates", candidates)
    else:
        from ttscale.store.bulk import bulk_insert

        for chunk in candidates.iter_slices(200_000):
            bulk_insert(conn, schema.candidates, chunk.iter_rows())


def _copy_csv(conn, table: str, frame) -> None:
    """COPY a frame in CSV through the transaction's own psycopg connection."""
    dbapi = conn.connection.dbapi_connection
    columns = ", ".join(frame.columns)
    with dbapi.cursor() as cur:
        for chunk in frame.iter_slices(500_000):
            data = chunk.write_csv(include_header=False, null_value="")
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT CSV, NULL '')") as copy:
                copy.write(data)


# ---- the timed children ---------------------------------------------------------------------


def child_report(url: str, sweep_id: str) -> dict:
    from ttscale.cli.report import build_from_store

    t0 = time.perf_counter()
    report = build_from_store(sweep_id, url, mode="prefix", bins="oracle")
    total = time.perf_counter() - t0
    return {
        "total_s": total,
        "n_accuracy_rows": report.accuracy.height,
        "n_frontier_rows": report.frontier.height + report.frontier_flops.height,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_read(url: str, sweep_id: str) -> dict:
    """The store reads alone (what the report spends before any analysis)."""
    from ttscale import store
    from ttscale.results import resolve_cells

    engine = store.make_engine(url)
    t0 = time.perf_counter()
    with store.connect(engine) as conn:
        cells = resolve_cells(conn, sweep_id)
        ids = cells["cell_id"].to_list()
        candidates = store.read_candidates(conn, ids)
        store.read_problem_runs(conn, ids)
    return {"read_s": time.perf_counter() - t0, "n_candidates": candidates.height,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def child_read_copy(url: str, sweep_id: str) -> dict:
    """For comparison only (PostgreSQL): the same candidate columns via COPY ... TO STDOUT
    (CSV) parsed by polars — what a COPY-based `read_candidates` could cost."""
    import io

    import polars as pl

    from ttscale import store
    from ttscale.results import resolve_cells
    from ttscale.store.read import CANDIDATE_SCHEMA

    engine = store.make_engine(url)
    t0 = time.perf_counter()
    with store.connect(engine) as conn:
        ids = resolve_cells(conn, sweep_id)["cell_id"].to_list()
        cur = conn.connection.dbapi_connection.cursor()
        id_list = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)  # 16-hex ids from our own table
        columns = ", ".join("correct::int" if k == "correct" else k for k in CANDIDATE_SCHEMA)  # CSV writes t/f
        query = f"COPY (SELECT {columns} FROM candidates WHERE cell_id IN ({id_list}) ORDER BY cell_id, problem_id, idx) TO STDOUT (FORMAT CSV)"
        buf = io.BytesIO()
        with cur.copy(query) as copy:
            for block in copy:
                buf.write(block)
        cur.close()
    frame = pl.read_csv(buf.getvalue(), has_header=False, new_columns=list(CANDIDATE_SCHEMA),
                        schema_overrides={k: (pl.Int8 if k == "correct" else v) for k, v in CANDIDATE_SCHEMA.items()})  # fmt: skip
    frame = frame.with_columns(pl.col("correct").cast(pl.Boolean))
    return {"read_s": time.perf_counter() - t0, "n_candidates": frame.height,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def python_map(rows: list[dict]) -> dict[tuple[str, int, str], int]:
    """The reference's approach: one Python function per problem row (search-and-learn's
    `dataset.map(compute_*_pred)`), every budget and method; returns correct counts."""
    from ttscale.analysis.verdicts import budgets
    from ttscale.selection import select

    hits: dict[tuple[str, int, str], int] = {}
    for row in rows:
        classes, scores, correct = row["answer_class"], row["score"], row["correct"]
        for n in budgets(row["n_cell"]):
            c, s = classes[:n], scores[:n]
            for method in ("naive", "weighted", "majority"):
                pick = select(c, s, method)
                key = (row["cell_id"], n, method)
                hits[key] = hits.get(key, 0) + bool(correct[pick])
    return hits


def child_compare(url: str, sweep_id: str, repeat: int) -> dict:
    import polars as pl

    from ttscale import store
    from ttscale.analysis.verdicts import select_verdicts
    from ttscale.results import resolve_cells

    engine = store.make_engine(url)
    with store.connect(engine) as conn:
        ids = resolve_cells(conn, sweep_id)["cell_id"].to_list()
        candidates = store.read_candidates(conn, ids)
    select_verdicts(candidates)  # warm-up
    polars_s = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        verdicts = select_verdicts(candidates)
        polars_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    rows = (
        candidates.sort("cell_id", "problem_id", "idx")
        .group_by("cell_id", "problem_id", maintain_order=True)
        .agg("answer_class", "score", "correct")
        .with_columns(pl.col("answer_class").list.len().max().over("cell_id").alias("n_cell"))
        .to_dicts()
    )
    prepare_s = time.perf_counter() - t0
    python_s = []
    for _ in range(max(1, min(repeat, 3))):
        t0 = time.perf_counter()
        hits = python_map(rows)
        python_s.append(time.perf_counter() - t0)
    # both sides agree on every (cell, n, method) count
    ours = (
        verdicts.filter(pl.col("method") != "pass")
        .group_by("cell_id", "n", "method")
        .agg(pl.col("correct").sum().cast(pl.Int64))
    )
    mismatches = sum(1 for c, n, m, k in ours.iter_rows() if hits.get((c, n, m)) != k)
    return {
        "polars_select_s": statistics.median(polars_s),
        "python_map_s": statistics.median(python_s),
        "python_prepare_s": prepare_s,
        "ratio": statistics.median(python_s) / statistics.median(polars_s),
        "n_rows": len(rows),
        "mismatches": mismatches + (len(hits) - ours.height),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(kind: str, url: str, sweep_id: str, repeat: int, size: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--db", url, "--sweep", sweep_id, "--repeat", str(repeat)]
    if size == "smoke":
        cmd.append("--smoke")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = c.store_benchmark_parser(__doc__, db_help="store URL (default: a temporary SQLite file)")
    parser.add_argument("--child", choices=["report", "read", "read_copy", "compare"], help=argparse.SUPPRESS)
    parser.add_argument("--sweep", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = "smoke" if args.smoke else "full"

    if args.child:
        import logging

        logging.getLogger("ttscale").setLevel(logging.WARNING)
        if args.child == "report":
            out = child_report(args.db, args.sweep)
        elif args.child == "read":
            out = child_read(args.db, args.sweep)
        elif args.child == "read_copy":
            out = child_read_copy(args.db, args.sweep)
        else:
            out = child_compare(args.db, args.sweep, args.repeat)
        print(json.dumps(out))
        return

    url, tmp = c.store_url(args.db, "ttscale-bench-")
    print(f"store: {url.split('@')[-1]}", file=sys.stderr)
    sweep_id, built = ensure_data(url, size)
    print(f"data: {built}", file=sys.stderr)

    run_child("report", url, sweep_id, 1, size)  # warm-up (OS and server caches)
    reports = [run_child("report", url, sweep_id, 1, size) for _ in range(args.repeat)]
    reads = [run_child("read", url, sweep_id, 1, size) for _ in range(args.repeat)]
    copies = [run_child("read_copy", url, sweep_id, 1, size) for _ in range(args.repeat)] if url.startswith("postgresql") else []
    compare = run_child("compare", url, sweep_id, args.repeat, size)
    load = os.getloadavg()
    total = statistics.median(r["total_s"] for r in reports)
    read = statistics.median(r["read_s"] for r in reads)
    peak = max(r["maxrss_mb"] for r in reports)
    cfg = SIZES[size]
    n_cands = reads[0]["n_candidates"]
    summary = {
        "size": size,
        "candidates": n_cands,
        "report_total_s_median": round(total, 1),
        "report_total_s_runs": [round(r["total_s"], 1) for r in reports],
        "store_read_s_median": round(read, 1),
        "copy_read_s_median": round(statistics.median(r["read_s"] for r in copies), 1) if copies else None,
        "load_average": [round(x, 1) for x in load],
        "analysis_s_median_est": round(total - read, 1),
        "report_peak_rss_mb": round(peak),
        "polars_select_s": round(compare["polars_select_s"], 2),
        "python_map_s": round(compare["python_map_s"], 1),
        "ratio": round(compare["ratio"], 1),
        "mismatches": compare["mismatches"],
    }
    print(json.dumps(summary, indent=2))
    if compare["mismatches"]:
        raise SystemExit("polars and the per-row Python map disagree")
    if args.no_record:
        return
    command = "python benchmarks/analysis_scale.py" + (" --smoke" if args.smoke else "") + (
        " --db postgresql+psycopg://…" if url.startswith("postgresql") else "" if tmp else f" --db {url}"
    )
    engine = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    copy_row = (
        f"| for comparison: candidates via `COPY ... TO STDOUT (CSV)` + `polars.read_csv` (not what the store reader does) | "
        f"{statistics.median(r['read_s'] for r in copies):.1f} s median |\n"
        if copies
        else ""
    )
    text = f"""## analysis_scale ({size}, {engine}) — {c.now_utc()}

- machine: {c.machine_line(gpu=False)}
- git: {c.git_sha()}; {c.versions_line("polars", "sqlalchemy", store_url=url)}
- command: `{command}` (warm-up + {args.repeat} runs each, medians; each run a fresh process)
- load average at the end (1/5/15 min): {" / ".join(f"{x:.1f}" for x in load)} — the machine was shared with other work; figures under load are upper bounds
- data: {cfg["n_problems"]} problems × {cfg["n"]} candidates × {len(STRATEGIES)} strategies × {len(cfg["seeds"])} seeds × 2 models = {n_cands:,} candidates with scores{f"; generated in {built['generate_s']} s, bulk-loaded in {built['load_s']} s" if built.get("generated") else " (already in the store)"}

| figure | value |
|---|---|
| full report (read + all n, all selections, oracle bins, frontiers per n and per FLOPs, model comparison) | **{total:.1f} s** median (runs: {", ".join(f"{r['total_s']:.1f}" for r in reports)}) |
| of which store reads (cells, candidates, problem runs) | {read:.1f} s median |
| of which analysis (the difference) | {total - read:.1f} s |
{copy_row}| peak memory of the report process (ru_maxrss) | {peak / 1024:.2f} GiB |
| selection, polars (`select_verdicts`: {compare["n_rows"]:,} problem rows, every n, naive/weighted/majority/pass) | {compare["polars_select_s"]:.2f} s |
| selection, per-row Python map (reference style, `ttscale.selection.select` per row, n, method) | {compare["python_map_s"]:.1f} s (+ {compare["python_prepare_s"]:.1f} s building the rows) |
| ratio Python map / polars | **{compare["ratio"]:.1f}×** (results identical: {compare["mismatches"]} mismatches) |
"""
    c.record(text)


if __name__ == "__main__":
    main()
