"""`ttscale report SWEEP_OR_CELL`: accuracy at n, difficulty bins, compute-optimal frontiers and
model comparison for a sweep (or one cell), read from the store and printed as rich tables,
JSON, CSV or Markdown; `--plot out.png` writes the frontier chart.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer

from ttscale import results, store
from ttscale.analysis.costs import FLOPS_AXES
from ttscale.analysis.difficulty import BIN_KINDS
from ttscale.analysis.report import FORMATS, TABLES, Report, plot_frontier, render, rich_tables
from ttscale.analysis.verdicts import MODES
from ttscale.cli import terminal
from ttscale.cli.context import DB_HELP, console, settings_for
from ttscale.errors import SpecError
from ttscale.policy import save_policy
from ttscale.store.provenance import code_version

logger = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        target: str = typer.Argument(..., metavar="SWEEP_OR_CELL", help="A sweep id, id prefix or name, or a cell id"),
        fmt: str = typer.Option("table", "--format", help="table | json | csv | markdown"),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write the frontier chart to this PNG file"),
        mode: str = typer.Option("prefix", help="prefix (first n by idx, as the reference) | bootstrap (random subsets)"),
        bins: str = typer.Option("oracle", help="Difficulty bins: oracle | predicted | level"),
        draws: int = typer.Option(32, help="Random subsets per budget in bootstrap mode"),
        seed: int = typer.Option(0, help="Seed of the bootstrap subsets"),
        fold_seed: int = typer.Option(0, help="Seed of the two-fold problem split"),
        flops: str = typer.Option("charged", help="FLOPs axis: charged (generated tokens, as the reference) | computed (prompt tokens not served from the prefix cache, plus generated)"),
        table: Optional[list[str]] = typer.Option(
            None, "--table", help=f"Only these tables (repeatable): {', '.join(TABLES)}"
        ),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the report to this file instead of stdout"),
        policy: Optional[Path] = typer.Option(
            None, "--policy", help="Also write the compute-optimal policy (predicted bins, whatever --bins) to this JSON file, for the `adaptive` strategy"
        ),
        policy_model: Optional[str] = typer.Option(None, help="The model the policy is for (needed when the cells have several)"),
        policy_dataset: Optional[str] = typer.Option(None, help="The dataset the policy is learned on (needed when the cells have several)"),
        db: Optional[str] = typer.Option(None, help=DB_HELP),
    ) -> None:
        """Analyse stored cells: accuracy@n, bins, compute-optimal frontier, models at matched FLOPs."""
        for name, value, allowed in (("--format", fmt, FORMATS), ("--mode", mode, MODES), ("--bins", bins, BIN_KINDS), ("--flops", flops, FLOPS_AXES)):
            if value not in allowed:
                raise SpecError(f"{name}: unknown {value!r}; allowed: {', '.join(allowed)}")
        for name in table or []:
            if name not in TABLES:
                raise SpecError(f"--table: unknown {name!r}; allowed: {', '.join(TABLES)}")
        if draws < 1:
            raise SpecError(f"--draws: must be >= 1, got {draws}")
        stored, sweep = read_from_store(target, settings_for(db).database_url)
        result = build_report_of(target, stored, mode=mode, bins=bins, n_draws=draws, seed=seed, fold_seed=fold_seed, flops=flops)
        write_report(result, fmt, table, out)
        if plot is not None:
            path = plot_frontier(result.models, plot, frontier=result.frontier, title=f"ttscale report {target}")
            print(f"plot: {path}", file=terminal.stderr())
        if policy is not None:
            learned = results.policy(stored, sweep=sweep, code_version=code_version(), model=policy_model, dataset=policy_dataset)
            path = save_policy(learned, policy)
            print(
                f"policy: {path} ({learned.model} on {learned.dataset}, {len(learned.predictor.bins)} bins, budgets {list(learned.budgets)})",
                file=terminal.stderr(),
            )


def read_from_store(target: str, url: str) -> tuple[results.StoredResults, dict | None]:
    """The cells of `target` with what analysis needs, and the sweep's row (None for a cell)."""
    start = time.perf_counter()
    with store.opened(url, create_embedded=False) as engine, store.connect(engine) as conn:
        stored = results.read_results(conn, results.resolve_cells(conn, target))
        sweep = results.resolve_sweep(conn, target)
    logger.info("report read cells=%d candidates=%d elapsed_s=%.1f", stored.cells.height, stored.candidates.height, time.perf_counter() - start)
    if stored.candidates.height == 0:
        raise SpecError(f"SWEEP_OR_CELL: {target!r} has no stored candidates yet")
    return stored, sweep


def build_from_store(target: str, url: str, **options: object) -> Report:
    """Read the cells of `target` with what analysis needs, and build the report."""
    return build_report_of(target, read_from_store(target, url)[0], **options)


def build_report_of(target: str, stored: results.StoredResults, **options: object) -> Report:
    """The report of the cells of `target` read by `read_from_store`."""
    start = time.perf_counter()
    built = results.report(stored, **options)
    logger.info("report built target=%s cells=%d elapsed_s=%.1f", target, stored.cells.height, time.perf_counter() - start)
    return built


def write_report(result: Report, fmt: str, tables: list[str] | None, out: Path | None) -> None:
    """Tables as wide as the terminal (80 columns when piped or written to a file, split to
    fit); JSON, CSV and Markdown as they are."""
    if fmt == "table" and out is None:
        screen = console()
        for t in rich_tables(result, tables, width=screen.width):
            screen.print(t)
        return
    text = render(result, fmt, tables)
    if out is None:
        stream = terminal.stdout()
        stream.write(text if text.endswith("\n") else text + "\n")
        stream.flush()
    else:
        out.write_text(text, encoding="utf-8")
        print(f"report: {out}", file=terminal.stderr())
