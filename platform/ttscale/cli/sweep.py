"""`ttscale sweep validate | run | submit | status | cancel | sync-mlflow`: whole grids of cells.

- `validate SPEC`: the expanded grid (cells, problems, estimated generations and tokens) or
  the errors, one line each naming the spec field (exit 2). Nothing is stored or queued.
- `run SPEC`: local mode — this process runs every shard through Prefect's temporary server
  (state under $TTSCALE_HOME/prefect), stores results, tracks in MLflow.
- `submit SPEC --pool POOL`: team mode — against PREFECT_API_URL, deploys the shard flow on
  the process work pool and queues one run per shard for `ttscale worker`s; `--wait` waits,
  then settles and tracks. Checked first: nothing is queued or stored for a bad spec.
- `status SWEEP`, `cancel SWEEP`, `sync-mlflow SWEEP`: SWEEP is an id, an id prefix or a name.

A `learned:PATH` verifier in a spec is stored in its cells as `learned:ABSOLUTE_PATH@FINGERPRINT`
(`read_sweep`), as `ttscale run` stores it: a retrained model is other cells, never a resumed one.

Prefect is configured through the environment before it is imported (`context.configure_prefect`),
and what Prefect, vLLM and MLflow print goes to the command's log file (`terminal.to_log_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ttscale.store import Engine
from ttscale import runner, store, sweep_state, tracking
from ttscale.cli import terminal
from ttscale.cli.context import DB_HELP, configure_prefect, console, created_by, print_table, settings_for
from ttscale.cli.progress import SweepDisplay
from ttscale.errors import OrchestrationError, SpecError, TrackingError
from ttscale.planning import SweepPlan, check_sweep, plan_sweep
from ttscale.redaction import redact_url
from ttscale.results import read_results, summaries
from ttscale.settings import Settings
from ttscale.reward_model import pinned_name, short_names
from ttscale.spec import SweepSpec, read_sweep_file
from ttscale.sweep_state import SweepProgress


def read_sweep(path: Path) -> tuple[SweepSpec, str]:
    """The spec of a file, its `learned:` verifiers pinned to their folder's absolute path and
    fingerprint (the file's text is kept as written)."""
    spec, text = read_sweep_file(str(path))
    verifiers = [
        pinned_name(v.removeprefix("learned:"), field=f"verifiers[{i}]") if v is not None and v.startswith("learned:") else v
        for i, v in enumerate(spec.verifiers)
    ]
    if verifiers == spec.verifiers:
        return spec, text
    return SweepSpec.model_validate({**spec.model_dump(mode="json"), "verifiers": verifiers}), text


def run_here(spec: SweepSpec, text: str, settings: Settings, command: str = "sweep-run") -> str:
    """Local mode, the path `ttscale sweep run` and `ttscale run` share: plan against the store,
    register, run every shard in this process through Prefect's temporary server (with a
    progress display), settle, track in MLflow and print the results. Everything but
    ttscale's own lines goes to the log file named after `command`. Returns the sweep id;
    OrchestrationError when a cell did not finish."""
    out = console()
    problem_ids = check_sweep(spec, settings)  # every check before anything is stored
    terminal.to_log_file(settings.home, command)
    with store.opened(settings.database_url) as engine:
        plan = sweep_state.plan_remaining(engine, spec, problem_ids)
        sweep_id = sweep_state.register_plan(engine, plan, text, created_by())
        out.print(escape(plan_line(plan)), soft_wrap=True)
        configure_prefect(settings)
        from flows.sweep import run_sweep  # Prefect is imported only by the commands that orchestrate

        try:
            with SweepDisplay(plan, out) as display:
                summary = run_sweep(sweep_id, sweep_state.shard_params(plan, sweep_id), spec.retries, settings, progress=display)
        finally:
            runner.release_policies()
        finish(out, engine, sweep_id, summary)
    return sweep_id


def register(app: typer.Typer) -> None:
    sweep_app = typer.Typer(help="Run grids of cells (sweeps) locally or on a Prefect work pool.", no_args_is_help=True)
    app.add_typer(sweep_app, name="sweep")

    @sweep_app.command("validate")
    def validate(spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML)")) -> None:
        """Print the expanded grid and estimated work, or the spec's errors (exit 2)."""
        spec, _ = read_sweep(spec_path)
        print_plan(console(), plan_sweep(spec, check_sweep(spec, settings_for())))

    @sweep_app.command("run")
    def run(
        spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML)"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Run the sweep here (local mode): every shard in this process, results to the store, MLflow tracking."""
        spec, text = read_sweep(spec_path)
        run_here(spec, text, settings_for(db))

    @sweep_app.command("submit")
    def submit(
        spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML)"),
        pool: Optional[str] = typer.Option(None, "--pool", help="Prefect process work pool (default: the spec's run_on)"),
        wait: bool = typer.Option(False, "--wait/--no-wait", help="Wait for every shard, then settle statuses and track in MLflow"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Queue the sweep's shards on a work pool (team mode, PREFECT_API_URL)."""
        settings = settings_for(db)
        spec, text = read_sweep(spec_path)
        pool = pool or (spec.run_on if spec.run_on != "local" else None)
        if not pool:
            raise SpecError("--pool: team mode needs a work pool (the spec's run_on is `local`)")
        if not settings.prefect_api_url:
            raise SpecError("PREFECT_API_URL: not set; team mode submits to a Prefect server (or use `ttscale sweep run`)")
        out = console()
        problem_ids = check_sweep(spec, settings)
        terminal.to_log_file(settings.home, "sweep-submit")
        with store.opened(settings.database_url) as engine:
            plan = sweep_state.plan_remaining(engine, spec, problem_ids)
            configure_prefect(settings)
            from flows import team
            from flows.sweep import run_sweep

            try:
                team.check_api()
            except RuntimeError as err:
                raise OrchestrationError(str(err)) from None
            sweep_id = sweep_state.register_plan(engine, plan, text, created_by())
            out.print(escape(plan_line(plan)), soft_wrap=True)
            shards = sweep_state.shard_params(plan, sweep_id)
            summary = run_sweep(sweep_id, shards, spec.retries, settings, pool=pool, wait=wait)
            out.print(f"sweep {sweep_id}: {len(summary.get('flow_run_ids', []))} shard runs queued on pool {escape(repr(pool))}")
            if wait:
                finish(out, engine, sweep_id, summary)
            else:
                out.print(f"follow with `ttscale sweep status {sweep_id}`; track with `ttscale sweep sync-mlflow {sweep_id}` when done")

    @sweep_app.command("status")
    def status(
        sweep: str = typer.Argument(..., metavar="SWEEP", help="Sweep id, id prefix or name"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Per-cell progress from the store."""
        with store.opened(settings_for(db).database_url, create_embedded=False) as engine:
            print_progress(console(), sweep_state.sweep_progress(engine, sweep))

    @sweep_app.command("cancel")
    def cancel(
        sweep: str = typer.Argument(..., metavar="SWEEP", help="Sweep id, id prefix or name"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Cancel the sweep's queued and running flow runs and mark its unfinished cells cancelled."""
        settings = settings_for(db)
        out = console()
        with store.opened(settings.database_url, create_embedded=False) as engine:
            sweep_id = sweep_state.find_sweep(engine, sweep)["sweep_id"]
            if settings.prefect_api_url:
                terminal.to_log_file(settings.home, "sweep-cancel")
                configure_prefect(settings)
                from flows import team

                try:
                    out.print(f"cancelled {team.cancel_sweep_runs(sweep_id)} flow runs")
                except Exception as err:  # noqa: BLE001 - the store is still marked; say why Prefect was not
                    reason = escape(redact_url(str(err).splitlines()[0] if str(err) else type(err).__name__))
                    out.print(f"[yellow]could not cancel flow runs at {escape(redact_url(settings.prefect_api_url))}: {reason}[/yellow]")
            n_cells = sweep_state.cancel_in_store(engine, sweep_id)
        out.print(f"sweep {sweep_id}: {n_cells} cells marked cancelled")

    @sweep_app.command("sync-mlflow")
    def sync_mlflow(
        sweep: str = typer.Argument(..., metavar="SWEEP", help="Sweep id, id prefix or name"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Log the sweep (parent run) and its cells (nested runs) to MLflow from the store."""
        settings = settings_for(db)
        with store.opened(settings.database_url, create_embedded=False) as engine:
            sweep_id = sweep_state.find_sweep(engine, sweep)["sweep_id"]
            terminal.to_log_file(settings.home, "sweep-sync-mlflow")
            report = tracking.track_sweep(engine, sweep_id, settings.mlflow_tracking_uri, store_url=settings.database_url)
        if not report.complete:
            raise TrackingError(f"tracking of sweep {sweep_id} incomplete: {report.error}")
        console().print(
            f"sweep {sweep_id}: tracked in {escape(redact_url(settings.mlflow_tracking_uri))} "
            f"(run {report.parent_run_id}, {len(report.cell_run_ids)} cell runs)"
        )


# ---- output ---------------------------------------------------------------------------------------


def plan_line(plan: SweepPlan) -> str:
    total = plan.total
    return (
        f"{len(plan.cells)} cells ({len(plan.running_cells)} run, {len(plan.served_cells)} served by a larger budget), "
        f"{len(plan.shards)} shards with {plan.n_problems_left} problems to run; "
        f"≤{total.n_generations:,} generations, ≤{total.n_tokens:,} tokens"
    )


def _strategy_params(cell) -> str:  # noqa: ANN001
    # shown_params: an adaptive cell's embedded policy shows as its id, not the whole file
    return " ".join(f"{k}={v}" for k, v in cell.strategy.shown_params().items()) or "-"


def print_plan(out, plan: SweepPlan) -> None:  # noqa: ANN001
    """The expanded grid: one row per cell, then the totals. (The strategy's parameters come
    last: the widest column, it gets a part of its own on a narrow terminal.)"""
    rows = []
    shown = short_names(planned.cell.verifier for planned in plan.cells)  # the full names: `sweep validate`'s spec
    for planned in plan.cells:
        cell = planned.cell
        est = plan.estimates.get(planned.cell_id)
        rows.append([planned.cell_id, cell.model, cell.strategy.name, shown.get(cell.verifier, "-"), cell.n, cell.dataset.label, cell.seed,
                     len(plan.problem_ids[planned.cell_id]), f"{est.n_generations:,}" if est else "0", f"{est.n_tokens:,}" if est else "0",
                     "yes" if planned.runs else f"served by {planned.source_cell_id}", _strategy_params(cell)])  # fmt: skip
    print_table(out, f"sweep {plan.spec.name!r}: {len(plan.cells)} cells",
                ["cell", "model", "strategy", "verifier", "n", "dataset", "seed", "problems", "gens ≤", "tokens ≤", "runs", "parameters"],
                rows, right={"n", "seed", "problems", "gens ≤", "tokens ≤"})  # fmt: skip
    per_cell = sorted({len(v) for v in plan.problem_ids.values()})
    total = plan.total
    out.print(f"cells: {len(plan.cells)} ({len(plan.running_cells)} run, {len(plan.served_cells)} served by the largest budget)")
    out.print(f"problems per cell: {', '.join(map(str, per_cell))}")
    out.print(f"shards: {len(plan.shards)} of at most {plan.spec.shard_size} problems")
    out.print(f"estimated generations: ≤{total.n_generations:,}")
    out.print(f"estimated tokens: ≤{total.n_tokens:,}")


def print_progress(out, progress: SweepProgress, *, table: bool = True) -> None:  # noqa: ANN001
    """Per-cell status and problems stored (the table), the counts and the tracking state."""
    if table:
        rows = []
        shown = short_names(c.row["verifier"] for c in progress.cells)
        for c in progress.cells:
            done = f"{c.n_done}/{c.n_total}" + (f" (from {c.source_cell_id})" if c.source_cell_id else "")
            r = c.row
            rows.append([c.cell_id, r["model"], r["strategy"], shown.get(r["verifier"], "-"), r["n"], r["seed"], r["dataset"], c.status, done,
                         r["mlflow_run_id"] or "-"])  # fmt: skip
        print_table(out, f"sweep {progress.sweep_id} {progress.sweep['name']!r}: {progress.status}",
                    ["cell", "model", "strategy", "verifier", "n", "seed", "dataset", "status", "problems", "mlflow run"], rows,
                    right={"n", "seed", "problems"})  # fmt: skip
    out.print(
        f"cells: {progress.count('done')} done, {progress.count('running')} running, {progress.count('pending')} pending, "
        f"{progress.count('failed')} failed, {progress.count('cancelled')} cancelled; problems {progress.n_done}/{progress.n_total}"
    )
    tracked = "complete" if progress.tracking_complete else f"incomplete (run `ttscale sweep sync-mlflow {progress.sweep_id}`)"
    out.print(f"tracking: {tracked}")


RESULT_METHODS = {"naive": "naive", "weighted": "weighted", "majority": "majority", "pass": "pass@n"}


def print_results(out, engine: Engine, sweep_id: str) -> None:  # noqa: ANN001
    """Accuracy at each cell's N (the numbers MLflow gets), tokens, FLOPs, wall time."""
    with store.connect(engine) as conn:
        results = read_results(conn, store.read_cells(conn, sweep_id))
    got = summaries(results)
    rows = []
    shown = short_names(results.cells["verifier"].to_list())
    for row in results.cells.sort("model", "strategy", "n", "seed").iter_rows(named=True):
        at_n = got.at(row["cell_id"], row["n"])
        totals = got.totals_of(row["cell_id"])
        # a cell with nothing stored (failed, cancelled) has null totals: shown as "-"
        tokens, flops, wall = (totals.get(k) for k in ("n_generated_tokens", "total_flops", "wall_time_s"))
        rows.append([row["model"], row["strategy"], shown.get(row["verifier"], "-"), row["n"], row["seed"], row["status"],
                     *(f"{at_n[m]:.3f}" if m in at_n else "-" for m in RESULT_METHODS),
                     "-" if tokens is None else f"{tokens:,.0f}", "-" if flops is None else f"{flops:.3g}",
                     "-" if wall is None else f"{wall:.1f}"])  # fmt: skip
    numbers = [*RESULT_METHODS.values(), "tokens", "FLOPs", "wall s"]
    print_table(out, "results at each cell's N", ["model", "strategy", "verifier", "n", "seed", "status", *numbers], rows,
                keys=5, right={"n", "seed", *numbers})  # fmt: skip
    out.print("pass@n: unbiased estimate from all N samples; FLOPs: charged as the reference")


def finish(out, engine: Engine, sweep_id: str, summary: dict) -> None:  # noqa: ANN001
    """The results, the cells' counts and tracking state; OrchestrationError unless done.
    (Each cell's status is in the results; `ttscale sweep status` has the per-cell table.)"""
    print_results(out, engine, sweep_id)
    progress = sweep_state.sweep_progress(engine, sweep_id)
    print_progress(out, progress, table=False)
    tracked = summary.get("tracking") or {}
    if tracked and not tracked.get("complete"):
        out.print(f"[yellow]MLflow tracking incomplete: {escape(str(tracked.get('error')))}[/yellow]")
    if progress.status != "done":
        raise OrchestrationError(
            f"sweep {sweep_id} {progress.status}: {progress.count('failed')} cells failed, {progress.count('cancelled')} cancelled, "
            f"{progress.count('running') + progress.count('pending')} unfinished (see the flow run logs; rerun to resume)"
        )
