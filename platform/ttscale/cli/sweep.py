"""`ttscale sweep validate | run | submit | status | cancel | sync-mlflow`: whole grids of cells.

- `validate SPEC`: the expanded grid (cells, problems, estimated generations and tokens) or
  the errors, one line each naming the spec field (exit 2). Nothing is stored or queued.
- `run SPEC`: local mode — this process runs every shard through Prefect's temporary server
  (state under $TTSCALE_HOME/prefect), stores results, tracks in MLflow.
- `submit SPEC --pool POOL`: team mode — against PREFECT_API_URL, deploys the shard flow on
  the process work pool and queues one run per shard for `ttscale worker`s; `--wait` waits,
  then settles and tracks. Checked first: nothing is queued or stored for a bad spec.
- `status SWEEP`, `cancel SWEEP`, `sync-mlflow SWEEP`: SWEEP is an id, an id prefix or a name.

Prefect is configured through the environment before it is imported (`prefect_environment`).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Optional

import typer

DB_HELP = "Store URL (default: $TTSCALE_DATABASE_URL or the SQLite file under $TTSCALE_HOME)"


def prefect_environment(settings) -> dict[str, str]:
    """Keep Prefect's state under $TTSCALE_HOME/prefect (else it writes ~/.prefect) and send
    ttscale's log lines to the run logs. Must run before `prefect` is imported; variables the
    user set win. Returns the variables set."""
    home = settings.home / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(home),
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
        "PREFECT_MEMO_STORE_PATH": str(home / "memo_store.toml"),
        "PREFECT_LOGGING_SETTINGS_PATH": str(home / "logging.yml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The temporary server's first start creates its database: slow on a busy 2-core box.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",  # Prefect's client-side usage analytics (sent from interactive terminals)
        # ttscale lines logged outside a flow run (before or after it) stay on the terminal only.
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }
    applied = {}
    for key, value in defaults.items():
        if not os.environ.get(key):
            os.environ[key] = applied[key] = value
    extra = [x for x in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if x.strip()]
    if "ttscale" not in extra:
        os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = applied["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join([*extra, "ttscale"])
    return applied


def _settings(db: str | None):
    from dataclasses import replace

    from ttscale.settings import Settings

    settings = Settings.from_env()
    return replace(settings, database_url=db) if db else settings


def _created_by() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(file=sys.stderr if stderr else sys.stdout, width=160)


def _quiet_prefect_console() -> None:
    """ttscale's lines already go to stderr through the CLI's handler: stop them from also
    reaching Prefect's console handler on the root logger (they still reach the run logs)."""
    import logging

    logging.getLogger("ttscale").propagate = False


def register(app: typer.Typer) -> None:
    sweep_app = typer.Typer(help="Run grids of cells (sweeps) locally or on a Prefect work pool.", no_args_is_help=True)
    app.add_typer(sweep_app, name="sweep")

    @sweep_app.command("validate")
    def validate(spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML)")) -> None:
        """Print the expanded grid and estimated work, or the spec's errors (exit 2)."""
        from ttscale import execution

        settings = _settings(None)
        spec, _ = execution.read_spec_file(str(spec_path))
        plan = execution.build_plan(spec, settings)
        print_plan(_console(), plan)

    @sweep_app.command("run")
    def run(
        spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML)"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Run the sweep here (local mode): every shard in this process, results to the store, MLflow tracking."""
        from ttscale import execution

        settings = _settings(db)
        spec, text = execution.read_spec_file(str(spec_path))
        engine = execution.open_store(settings)
        plan = execution.build_plan(spec, settings, engine)  # every check before anything is stored
        console = _console()
        console.print(_plan_line(plan))
        prefect_environment(settings)
        if db:
            os.environ["TTSCALE_DATABASE_URL"] = db  # the flow's tasks read the store URL from the environment
        from flows.sweep import run_sweep

        _quiet_prefect_console()
        sweep_id = execution.sweep_id_of(spec)
        try:
            with _progress_bar(engine, sweep_id, plan):
                summary = run_sweep(text, source=str(spec_path), created_by=_created_by(), sweep_id=sweep_id)
        finally:
            execution.release_policies()
        _finish(console, engine, summary["sweep_id"], summary)

    @sweep_app.command("submit")
    def submit(
        spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML)"),
        pool: Optional[str] = typer.Option(None, "--pool", help="Prefect process work pool (default: the spec's run_on)"),
        wait: bool = typer.Option(False, "--wait/--no-wait", help="Wait for every shard, then settle statuses and track in MLflow"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Queue the sweep's shards on a work pool (team mode, PREFECT_API_URL)."""
        from ttscale import execution
        from ttscale.errors import OrchestrationError, SpecError

        settings = _settings(db)
        spec, text = execution.read_spec_file(str(spec_path))
        pool = pool or (spec.run_on if spec.run_on != "local" else None)
        if not pool:
            raise SpecError("--pool: team mode needs a work pool (the spec's run_on is `local`)")
        if not settings.prefect_api_url:
            raise SpecError("PREFECT_API_URL: not set; team mode submits to a Prefect server (or use `ttscale sweep run`)")
        engine = execution.open_store(settings)
        plan = execution.build_plan(spec, settings, engine)
        console = _console()
        console.print(_plan_line(plan))
        prefect_environment(settings)
        if db:
            os.environ["TTSCALE_DATABASE_URL"] = db
        from flows import team
        from flows.sweep import run_sweep

        _quiet_prefect_console()
        try:
            team.check_api()
        except RuntimeError as err:
            raise OrchestrationError(str(err)) from None
        sweep_id = execution.sweep_id_of(spec)
        summary = run_sweep(text, source=str(spec_path), created_by=_created_by(), sweep_id=sweep_id, pool=pool, wait=wait)
        console.print(f"sweep {summary['sweep_id']}: {len(summary.get('flow_run_ids', []))} shard runs queued on pool {pool!r}")
        if wait:
            _finish(console, engine, summary["sweep_id"], summary)
        else:
            console.print(f"follow with `ttscale sweep status {summary['sweep_id']}`; track with `ttscale sweep sync-mlflow {summary['sweep_id']}` when done")

    @sweep_app.command("status")
    def status(
        sweep: str = typer.Argument(..., metavar="SWEEP", help="Sweep id, id prefix or name"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Per-cell progress from the store."""
        from ttscale import execution

        engine = execution.open_store(_settings(db))
        print_progress(_console(), execution.sweep_progress(engine, sweep))

    @sweep_app.command("cancel")
    def cancel(
        sweep: str = typer.Argument(..., metavar="SWEEP", help="Sweep id, id prefix or name"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Cancel the sweep's queued and running flow runs and mark its unfinished cells cancelled."""
        from ttscale import execution

        settings = _settings(db)
        engine = execution.open_store(settings)
        with engine.connect() as conn:
            row = execution.find_sweep(conn, sweep)
        console = _console()
        if settings.prefect_api_url:
            prefect_environment(settings)
            from flows import team

            try:
                n_runs = team.cancel_sweep_runs(row["id"])
                console.print(f"cancelled {n_runs} flow runs")
            except Exception as err:  # noqa: BLE001 - the store is still marked; say why Prefect was not
                console.print(f"[yellow]could not cancel flow runs at {settings.prefect_api_url}: {str(err).splitlines()[0]}[/yellow]")
        n_cells = execution.cancel_in_store(engine, row["id"])
        console.print(f"sweep {row['id']}: {n_cells} cells marked cancelled")

    @sweep_app.command("sync-mlflow")
    def sync_mlflow(
        sweep: str = typer.Argument(..., metavar="SWEEP", help="Sweep id, id prefix or name"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Log the sweep (parent run) and its cells (nested runs) to MLflow from the store."""
        from ttscale import execution, tracking
        from ttscale.errors import TrackingError
        from ttscale.store import redact_url

        settings = _settings(db)
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        engine = execution.open_store(settings)
        with engine.connect() as conn:
            row = execution.find_sweep(conn, sweep)
        report = tracking.track_sweep(engine, row["id"], settings.mlflow_tracking_uri, store_url=redact_url(settings.database_url))
        if not report.complete:
            raise TrackingError(f"tracking of sweep {row['id']} incomplete: {report.error}")
        _console().print(
            f"sweep {row['id']}: tracked in {tracking.redact(settings.mlflow_tracking_uri)} "
            f"(run {report.parent_run_id}, {len(report.cell_run_ids)} cell runs)"
        )


# ---- output ---------------------------------------------------------------------------------------


def _plan_line(plan) -> str:
    total = plan.total
    return (
        f"{len(plan.cells)} cells ({len(plan.running_cells)} run, {len(plan.served_cells)} served by a larger budget), "
        f"{len(plan.shards)} shards with {plan.n_problems_left} problems to run; "
        f"≤{total.n_generations:,} generations, ≤{total.n_tokens:,} tokens"
    )


def _strategy_label(cell) -> str:
    params = {k: v for k, v in cell.strategy.model_dump().items() if k != "name"}
    return cell.strategy.name + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")


def print_plan(console, plan) -> None:
    """The expanded grid: one row per cell, then the totals."""
    from rich.table import Table

    spec = plan.spec
    table = Table(title=f"sweep {spec.name!r}: {len(plan.cells)} cells")
    for col in ("cell", "model", "strategy", "verifier", "n", "dataset", "seed", "problems", "generations ≤", "tokens ≤", "runs"):
        table.add_column(col, justify="right" if col in ("n", "seed", "problems", "generations ≤", "tokens ≤") else "left")
    for planned in plan.cells:
        cell = planned.cell
        est = plan.estimates.get(planned.cell_id)
        table.add_row(
            planned.cell_id,
            cell.model,
            _strategy_label(cell),
            cell.verifier or "-",
            str(cell.n),
            cell.dataset.label,
            str(cell.seed),
            str(len(plan.problem_ids[planned.cell_id])),
            f"{est.n_generations:,}" if est else "0",
            f"{est.n_tokens:,}" if est else "0",
            "yes" if planned.runs else f"served by {planned.source_cell_id}",
        )
    console.print(table)
    per_cell = sorted({len(v) for v in plan.problem_ids.values()})
    total = plan.total
    console.print(f"cells: {len(plan.cells)} ({len(plan.running_cells)} run, {len(plan.served_cells)} served by the largest budget)")
    console.print(f"problems per cell: {', '.join(map(str, per_cell))}")
    console.print(f"shards: {len(plan.shards)} of at most {spec.shard_size} problems")
    console.print(f"estimated generations: ≤{total.n_generations:,}")
    console.print(f"estimated tokens: ≤{total.n_tokens:,}")


def print_progress(console, progress) -> None:
    from rich.table import Table

    table = Table(title=f"sweep {progress.sweep_id} {progress.name!r}: {progress.status}")
    for col in ("cell", "model", "strategy", "verifier", "n", "seed", "dataset", "status", "problems", "mlflow"):
        table.add_column(col, justify="right" if col in ("n", "seed", "problems") else "left")
    for c in progress.cells:
        done = f"{c.n_done}/{c.n_total}" + (f" (from {c.source_cell_id})" if c.source_cell_id else "")
        table.add_row(c.cell_id, c.model, c.strategy, c.verifier or "-", str(c.n), str(c.seed), c.dataset, c.status, done, c.mlflow_run_id or "-")
    console.print(table)
    console.print(
        f"cells: {progress.count('done')} done, {progress.count('running')} running, {progress.count('pending')} pending, "
        f"{progress.count('failed')} failed, {progress.count('cancelled')} cancelled; problems {progress.n_done}/{progress.n_total}"
    )
    tracking = "complete" if progress.tracking_complete else f"incomplete (run `ttscale sweep sync-mlflow {progress.sweep_id}`)"
    console.print(f"tracking: {tracking}")


def print_results(console, engine, sweep_id: str) -> None:
    """Accuracy at each cell's N (the numbers MLflow gets), tokens, FLOPs, wall time."""
    import polars as pl
    from rich.table import Table

    from ttscale import store, tracking

    with store.connect(engine) as conn:
        cells = store.read_cells(conn, sweep_id)
        gen = cells.filter(pl.col("source_cell_id").is_null())["id"].to_list()
        verdicts = store.read_verdicts(conn, gen)
        runs = store.read_problem_runs(conn, gen)
    by_id = {r["id"]: r for r in cells.iter_rows(named=True)}
    table = Table(title="results at each cell's N")
    for col in ("model", "strategy", "verifier", "n", "seed", "status", "naive", "weighted", "majority", "pass@n", "gen tokens", "FLOPs", "wall s"):
        table.add_column(col, justify="left" if col in ("model", "strategy", "verifier", "status") else "right")
    for row in cells.sort("model", "strategy", "n", "seed").iter_rows(named=True):
        source = by_id.get(row["source_cell_id"]) if row["source_cell_id"] else None
        at_n = {k: v for k, v, step in tracking.cell_metrics(row, source, verdicts, runs) if step == row["n"]}

        def fmt(key: str) -> str:
            return f"{at_n[key]:.3f}" if key in at_n else "-"

        table.add_row(
            row["model"], row["strategy"], row["verifier"] or "-", str(row["n"]), str(row["seed"]), row["status"],
            fmt("accuracy_naive"), fmt("accuracy_weighted"), fmt("accuracy_majority"), fmt("pass_at_n"),
            f"{at_n.get('n_generated_tokens', 0):,.0f}", f"{at_n.get('total_flops', 0):.3g}",
            f"{at_n['wall_time_s']:.1f}" if "wall_time_s" in at_n else "-",
        )  # fmt: skip
    console.print(table)


def _finish(console, engine, sweep_id: str, summary: dict) -> None:
    from ttscale import execution
    from ttscale.errors import OrchestrationError

    print_results(console, engine, sweep_id)
    progress = execution.sweep_progress(engine, sweep_id)
    print_progress(console, progress)
    tracked = summary.get("tracking") or {}
    if tracked and not tracked.get("complete"):
        console.print(f"[yellow]MLflow tracking incomplete: {tracked.get('error')}[/yellow]")
    if progress.status != "done":
        raise OrchestrationError(
            f"sweep {sweep_id} {progress.status}: {progress.count('failed')} cells failed, {progress.count('cancelled')} cancelled, "
            f"{progress.count('running') + progress.count('pending')} unfinished (see the flow run logs; rerun to resume)"
        )


class _progress_bar:
    """A tqdm bar of problems stored (cells done as postfix, ETA) when stderr is a terminal;
    it polls the store, which is what the run writes to."""

    def __init__(self, engine, sweep_id: str, plan, interval_s: float = 1.0) -> None:
        self.engine, self.sweep_id, self.plan, self.interval_s = engine, sweep_id, plan, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if sys.stderr.isatty():
            import logging

            from tqdm.contrib.logging import logging_redirect_tqdm

            # ttscale's log lines print above the bar instead of through it.
            self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger("ttscale")])
            self._redirect.__enter__()
            self._thread = threading.Thread(target=self._loop, name="ttscale-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._redirect.__exit__(*exc)

    def _loop(self) -> None:
        from tqdm import tqdm

        from ttscale import execution
        from ttscale.errors import TtscaleError

        total = sum(len(self.plan.problem_ids[c.cell_id]) for c in self.plan.running_cells)
        bar = tqdm(total=total, unit="problem", desc="problems", file=sys.stderr, dynamic_ncols=True)
        counts = execution.ProblemCounts()
        first = True
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    progress = execution.sweep_progress(self.engine, self.sweep_id, counts)
                except TtscaleError:  # not registered yet
                    continue
                if first:
                    bar.initial = bar.n = progress.n_done  # the rate (ETA) counts only what runs now
                    first = False
                bar.update(max(0, progress.n_done - bar.n))
                bar.set_postfix_str(f"cells {progress.count('done')}/{len(progress.cells)}")
        finally:
            bar.close()
