"""`ttscale report SWEEP_OR_CELL`: accuracy at n, difficulty bins, compute-optimal frontiers and
model comparison for a sweep (or one cell), read from the store and printed as rich tables,
JSON, CSV or Markdown; `--plot out.png` writes the frontier chart.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        target: str = typer.Argument(..., metavar="SWEEP_OR_CELL", help="A sweep id or name, or a cell id"),
        fmt: str = typer.Option("table", "--format", help="table | json | csv | markdown"),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write the frontier chart to this PNG file"),
        mode: str = typer.Option("prefix", help="prefix (first n by idx, as the reference) | bootstrap (random subsets)"),
        bins: str = typer.Option("oracle", help="Difficulty bins: oracle | predicted | level"),
        draws: int = typer.Option(32, help="Random subsets per budget in bootstrap mode"),
        seed: int = typer.Option(0, help="Seed of the bootstrap subsets"),
        fold_seed: int = typer.Option(0, help="Seed of the two-fold problem split"),
        table: Optional[list[str]] = typer.Option(
            None, "--table", help="Only these tables (repeatable): accuracy, bins, frontier, frontier_flops, models, comparison"
        ),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the report to this file instead of stdout"),
        db: Optional[str] = typer.Option(None, help="Store URL (default: $TTSCALE_DATABASE_URL or the SQLite file)"),
    ) -> None:
        """Analyse stored cells: accuracy@n, bins, compute-optimal frontier, models at matched FLOPs."""
        from ttscale.analysis.difficulty import BIN_KINDS
        from ttscale.analysis.report import FORMATS, TABLES
        from ttscale.analysis.verdicts import MODES
        from ttscale.errors import SpecError

        for name, value, allowed in (("--format", fmt, FORMATS), ("--mode", mode, MODES), ("--bins", bins, BIN_KINDS)):
            if value not in allowed:
                raise SpecError(f"{name}: unknown {value!r}; allowed: {', '.join(allowed)}")
        for name in table or []:
            if name not in TABLES:
                raise SpecError(f"--table: unknown {name!r}; allowed: {', '.join(TABLES)}")
        if draws < 1:
            raise SpecError(f"--draws: must be >= 1, got {draws}")
        result = build_from_store(
            target, _database_url(db), mode=mode, bins=bins, n_draws=draws, seed=seed, fold_seed=fold_seed
        )
        write_report(result, fmt, table, out)
        if plot is not None:
            from ttscale.analysis.report import plot_frontier

            path = plot_frontier(result.models, plot, frontier=result.frontier, title=f"ttscale report {target}")
            typer.echo(f"plot: {path}", err=True)


def _database_url(db: str | None) -> str:
    from ttscale.settings import Settings

    return db or Settings.from_env().database_url


def resolve_cells(conn, target: str):
    """The cells `target` names (a sweep id, a sweep name — newest first — or a cell id),
    plus the larger cells they reuse candidates from. SpecError if it names nothing."""
    import polars as pl

    from ttscale import store
    from ttscale.errors import SpecError

    everything = store.read_cells(conn)
    sweeps = store.read_sweeps(conn)
    by_name = sweeps.filter(pl.col("name") == target)
    if target in sweeps["id"].to_list() or by_name.height:
        sweep_id = target if target in sweeps["id"].to_list() else by_name["id"][0]
        chosen = store.read_cells(conn, sweep_id=sweep_id)
    elif target in everything["id"].to_list():
        chosen = everything.filter(pl.col("id") == target)
    else:
        raise SpecError(
            f"SWEEP_OR_CELL: no sweep or cell {target!r} in the store "
            f"({sweeps.height} sweeps, {everything.height} cells; `ttscale export` lists them)"
        )
    sources = set(chosen["source_cell_id"].drop_nulls().to_list()) - set(chosen["id"].to_list())
    if sources:
        chosen = pl.concat([chosen, everything.filter(pl.col("id").is_in(sorted(sources)))])
    return chosen


def build_from_store(target: str, url: str, **options):
    """Read the cells, candidates, problem runs and problems of `target`; build the report."""
    import logging
    import time

    import polars as pl

    from ttscale import store
    from ttscale.analysis.report import build_report

    log = logging.getLogger("ttscale.cli.report")
    engine = store.make_engine(url)
    store.check_reachable_and_migrated(engine)
    start = time.perf_counter()
    with store.connect(engine) as conn:
        cells = resolve_cells(conn, target)
        ids = cells["id"].to_list()
        candidates = store.read_candidates(conn, ids)
        runs = store.read_problem_runs(conn, ids)
        datasets = sorted(set(cells["dataset"].to_list()))
        problems = pl.concat([store.read_problems(conn, dataset=d) for d in datasets]) if datasets else None
    log.info("report read cells=%d candidates=%d elapsed_s=%.1f", len(ids), candidates.height, time.perf_counter() - start)
    if candidates.height == 0:
        from ttscale.errors import SpecError

        raise SpecError(f"SWEEP_OR_CELL: {target!r} has no stored candidates yet")
    result = build_report(cells, candidates, runs, problems, **options)
    log.info("report built cells=%d elapsed_s=%.1f", len(ids), time.perf_counter() - start)
    return result


def write_report(result, fmt: str, tables: list[str] | None, out: Path | None) -> None:
    from ttscale.analysis.report import render, rich_tables

    if fmt == "table" and out is None:
        from rich.console import Console

        console = Console(file=sys.stdout)
        for t in rich_tables(result, tables):
            console.print(t)
        return
    text = render(result, fmt, tables)
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"report: {out}", err=True)
