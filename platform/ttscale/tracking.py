"""MLflow tracking of sweeps, from the store: a sweep is a parent run, each cell a nested run.

Everything logged is read back from the store (the source of truth), so tracking can run
again at any time and says the same: `ttscale sweep sync-mlflow SWEEP` does exactly what the
end of a sweep does. Runs are found again by their tags (`ttscale.kind`, `ttscale.sweep_id`,
`ttscale.cell_id`), so a second pass updates them instead of adding new ones.

- Parent run (experiment = the sweep's name): params of the spec (models, strategies,
  budgets, ...), spec hash, code version; metrics n_cells_done, n_problems_done, total FLOPs,
  wall time; artifacts `spec.yaml` and the frontier chart `frontier.png`
  (`ttscale.analysis.plot_frontier`); tags linking the store's sweep id and the Prefect
  flow run id.
- Nested run per cell: params model, verifier, aggregation, strategy and its parameters, n,
  dataset, seed, sampling, code version, spec hash; metrics `accuracy_naive`,
  `accuracy_weighted`, `accuracy_majority` and `pass_at_n` at every stored budget n (the MLflow
  step is n, so the latest value is the cell's own N), tokens, FLOPs, wall time, problems/s;
  artifacts `results/{verdicts,problem_runs,candidates}.parquet`. Every number comes from
  `analysis.cell_results` (as `ttscale sweep run` prints it): a cell served by a larger
  budget's generations (`source_cell_id`) is measured on its source's first n candidates, with
  no wall time of its own.

Tracking never fails a sweep: `track_sweep` catches MLflow errors and reports the tracking
incomplete. Nor does it stall one: an HTTP server that does not answer the health probe is
skipped at once, and one that dies mid-pass costs seconds of retries per request
(`HTTP_RETRY_DEFAULTS`), not MLflow's ~4 minutes. Store reads and the marker write are
retried while the store is unavailable (`store.retrying`). The store marks completeness with
the sweep's `mlflow_run_id`: set only when a pass has logged every cell of a finished sweep,
cleared when the sweep is (re)submitted.
URLs in params and tags are logged with their secrets replaced by `***` (`ttscale.redaction`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import yaml

from ttscale.store import Engine
from ttscale import store
from ttscale.analysis.report import plot_frontier
from ttscale.errors import TtscaleError
from ttscale.redaction import redact_url, redact_urls
from ttscale.results import CellSummaries, StoredResults, read_results, report, summaries
from ttscale.spec import as_cell

logger = logging.getLogger(__name__)

EXPERIMENT_PREFIX = ""
"""Experiment name = this prefix + the sweep's name."""
METRIC_KEYS = {"naive": "accuracy_naive", "weighted": "accuracy_weighted", "majority": "accuracy_majority", "pass": "pass_at_n"}
_TERMINAL_RUN_STATUS = {"done": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
"""MLflow HTTP retry settings ttscale uses unless the environment sets them: ~3-6 s of retries
for a request to a server that went away (MLflow's own 7 retries at factor 2 take ~4 minutes,
sized for hosted services that rate-limit; tracking is repeatable with `sync-mlflow`)."""


@dataclass(frozen=True)
class TrackingReport:
    sweep_id: str
    complete: bool
    """MLflow now holds the finished sweep as stored (the store's marker was set)."""
    parent_run_id: str | None = None
    cell_run_ids: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    """Why tracking is incomplete (one line), None when complete."""


def redact_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow strings with URL secrets redacted."""
    return {k: redact_urls(v if isinstance(v, str) else json.dumps(v)) for k, v in params.items()}


# ---- what is logged: pure functions of store frames ---------------------------------------------


def cell_params(cell_row: Mapping[str, Any], sweep_row: Mapping[str, Any]) -> dict[str, str]:
    """A cell's params from its stored canonical spec and the sweep's spec hash/code version."""
    cell = as_cell(cell_row["spec"])
    spec = cell.model_dump(mode="json")
    params: dict[str, Any] = {
        "cell_id": cell_row["cell_id"],
        "model": spec["model"],
        "verifier": spec.get("verifier") or "none",
        "aggregation": spec["aggregation"],
        "strategy": spec["strategy"]["name"],
        "n": spec["n"],
        "dataset": cell_row["dataset"],
        "seed": spec["seed"],
        "code_version": cell_row["code_version"],
        "spec_hash": sweep_row["spec_hash"],
        "source_cell_id": cell_row["source_cell_id"] or "none",
    }
    for key, value in cell.strategy.shown_params().items():  # a policy as its id, not its kilobytes
        params[f"strategy.{key}"] = value
    for key, value in spec["dataset"].items():
        if key != "name" and value is not None:
            params[f"dataset.{key}"] = value
    for key, value in spec["sampling"].items():
        params[f"sampling.{key}"] = value
    return redact_params(params)


def sweep_params(sweep_row: Mapping[str, Any]) -> dict[str, str]:
    """The parent run's params: the spec's grid, its hash and the code version."""
    spec = yaml.safe_load(sweep_row["spec"]) or {}
    params: dict[str, Any] = {
        "sweep_id": sweep_row["sweep_id"],
        "name": sweep_row["name"],
        "spec_hash": sweep_row["spec_hash"],
        "code_version": sweep_row["code_version"],
        "created_by": sweep_row["created_by"],
    }
    for key in ("models", "verifiers", "strategies", "budgets", "datasets", "seeds", "aggregation", "sampling",
                "shard_size", "share_generations", "run_on", "retries"):  # fmt: skip
        if key in spec:
            params[key] = spec[key]
    return redact_params(params)


def cell_metrics(cell_row: Mapping[str, Any], got: CellSummaries) -> list[tuple[str, float, int]]:
    """(key, value, step) of one cell: accuracy per method at each of its budgets n (step n;
    `analysis.cell_results`, as `ttscale sweep run` prints them) and its totals at step N."""
    cell_id, n_cell = cell_row["cell_id"], int(cell_row["n"])
    rows = got.accuracy.filter(pl.col("cell_id") == cell_id)
    out = [(METRIC_KEYS[r["method"]], float(r["accuracy"]), int(r["n"])) for r in rows.iter_rows(named=True) if r["method"] in METRIC_KEYS]
    totals = got.totals_of(cell_id)
    for key in ("n_prompt_tokens", "n_prompt_tokens_computed", "n_generated_tokens", "n_verifier_tokens", "policy_flops",
                "policy_flops_computed", "verifier_flops", "total_flops", "flops_per_problem", "n_problems", "wall_time_s",
                "problems_per_s"):  # fmt: skip
        if totals.get(key) is not None:
            out.append((key, float(totals[key]), n_cell))
    return out


def sweep_metrics(cells: pl.DataFrame, runs: pl.DataFrame) -> list[tuple[str, float, int]]:
    running = cells.filter(pl.col("source_cell_id").is_null())
    return [
        ("n_cells", float(cells.height), 0),
        ("n_cells_done", float((cells["status"] == "done").sum()), 0),
        ("n_problems_done", float(running["n_problems_done"].sum()), 0),
        ("total_flops", float(runs["policy_flops"].sum() + runs["verifier_flops"].sum()), 0),
        ("n_generated_tokens", float(runs["n_generated_tokens"].sum()), 0),
        ("wall_time_s", float(runs["elapsed_s"].sum()), 0),
    ]


def run_name(cell_row: Mapping[str, Any]) -> str:
    """An MLflow run's display name for a cell."""
    verifier = f" {cell_row['verifier']}" if cell_row["verifier"] else ""
    return f"{cell_row['model']} {cell_row['strategy']}{verifier} n={cell_row['n']} seed={cell_row['seed']}"


# ---- MLflow -------------------------------------------------------------------------------------


def _client(tracking_uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)  # read by MLflow at each request
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _probe(tracking_uri: str) -> None:
    """Fail fast (one line) when an HTTP tracking server does not answer, instead of MLflow's
    minutes of retries."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        httpx.get(tracking_uri.rstrip("/") + "/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as err:
        raise ConnectionError(f"MLflow server {redact_url(tracking_uri)} unreachable: {type(err).__name__}: {err}") from None


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Beside the database for a SQLite tracking store (MLflow would use ./mlruns of the cwd)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    return (db.parent / "mlartifacts" / safe).absolute().as_uri()


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri, name))
    except Exception:  # created concurrently by another tracker
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _find_run(client, experiment_id: str, **tags: str):
    clauses = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([experiment_id], filter_string=clauses, max_results=2, order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def _log(client, run_id: str, params: Mapping[str, str], metrics: list[tuple[str, float, int]], tags: Mapping[str, str]) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    existing = client.get_run(run_id).data.params
    new_params = [Param(k, v) for k, v in params.items() if k not in existing]
    metric_rows = [Metric(k, float(v), now, step) for k, v, step in metrics]
    tag_rows = [RunTag(k, redact_urls(str(v))) for k, v in tags.items()]
    for i in range(0, max(len(new_params), len(metric_rows), len(tag_rows), 1), 100):
        client.log_batch(run_id, metrics=metric_rows[i : i + 100], params=new_params[i : i + 100], tags=tag_rows[i : i + 100])


def track_sweep(engine: Engine, sweep_id: str, tracking_uri: str, *, store_url: str | None = None, artifacts: bool = True) -> TrackingReport:
    """Log (or update) the sweep's parent run and every cell's nested run from the store.

    Never raises for a tracking failure: returns an incomplete report and logs a warning;
    the store's marker stays unset so `sync-mlflow` can fill it in later. Store errors do
    raise (they are not tracking's to hide). `store_url` is tagged redacted."""
    sweep, stored, verdicts = store.retrying(engine, lambda: _read_sweep(engine, sweep_id), what="reading the sweep for tracking")
    try:
        tracked = _track(sweep, stored, verdicts, tracking_uri, redact_url(store_url) if store_url else None, artifacts)
    except Exception as err:  # noqa: BLE001 - tracking must not fail the sweep; the reason is kept
        message = redact_urls(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        logger.warning("tracking incomplete sweep=%s uri=%s error=%s", sweep_id, redact_url(tracking_uri), message)
        return TrackingReport(sweep_id, False, error=message)
    finished = sweep["status"] in _TERMINAL_RUN_STATUS

    def mark(conn) -> None:  # noqa: ANN001
        for row in store.read_cells(conn, sweep_id).iter_rows(named=True):
            run_id = tracked.cell_run_ids.get(row["cell_id"])
            if run_id and row["mlflow_run_id"] != run_id:
                store.set_cell_status(conn, row["cell_id"], row["status"], mlflow_run_id=run_id, **_keep_times(row))
        if finished:
            store.set_sweep_status(conn, sweep_id, sweep["status"], mlflow_run_id=tracked.parent_run_id, finished_at=sweep["finished_at"])

    store.run_transaction(engine, mark, what="marking the sweep tracked")
    if not finished:
        logger.info("tracking logged sweep=%s but it is still %s: marked incomplete", sweep_id, sweep["status"])
        return TrackingReport(sweep_id, False, tracked.parent_run_id, tracked.cell_run_ids, f"sweep is {sweep['status']}")
    logger.info("tracking complete sweep=%s run=%s cells=%d", sweep_id, tracked.parent_run_id, len(tracked.cell_run_ids))
    return tracked


def _read_sweep(engine: Engine, sweep_id: str) -> tuple[dict, StoredResults, pl.DataFrame]:
    """The sweep's row, its cells' results and their stored verdicts, in one connection."""
    with store.connect(engine) as conn:
        sweep = store.read_sweep(conn, sweep_id)
        stored = read_results(conn, store.read_cells(conn, sweep_id))
        return sweep, stored, store.read_verdicts(conn, stored.generating["cell_id"].to_list())


def _keep_times(row: Mapping[str, Any]) -> dict:
    # set_cell_status stamps finished_at for terminal statuses unless given: keep the stored one.
    return {"finished_at": row["finished_at"]} if row["status"] in _TERMINAL_RUN_STATUS else {}


def _track(sweep: dict, stored: StoredResults, verdicts: pl.DataFrame, tracking_uri: str, store_url: str | None, artifacts: bool) -> TrackingReport:
    _probe(tracking_uri)
    client = _client(tracking_uri)
    experiment = EXPERIMENT_PREFIX + sweep["name"]
    exp_id = _experiment_id(client, experiment, tracking_uri)
    sweep_id = sweep["sweep_id"]
    parent_tags = {"ttscale.kind": "sweep", "ttscale.sweep_id": sweep_id}
    parent = _find_run(client, exp_id, **parent_tags)
    parent_id = parent.info.run_id if parent else client.create_run(exp_id, tags=parent_tags, run_name=f"{sweep['name']} {sweep_id}").info.run_id
    tags = {"prefect.flow_run_id": sweep["prefect_flow_run_id"] or "", "ttscale.status": sweep["status"]}
    if store_url:
        tags["ttscale.store_url"] = store_url
    _log(client, parent_id, sweep_params(sweep), sweep_metrics(stored.cells, stored.runs), tags)
    got = summaries(stored)
    by_id = {row["cell_id"]: row for row in stored.cells.iter_rows(named=True)}
    cell_run_ids: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ttscale-mlflow-") as tmp:
        for row in stored.cells.iter_rows(named=True):
            source = by_id.get(row["source_cell_id"]) if row["source_cell_id"] else None
            cell_tags = {"ttscale.kind": "cell", "ttscale.sweep_id": sweep_id, "ttscale.cell_id": row["cell_id"]}
            run = _find_run(client, exp_id, **cell_tags)
            run_id = run.info.run_id if run else client.create_run(
                exp_id, tags={**cell_tags, "mlflow.parentRunId": parent_id}, run_name=run_name(row)
            ).info.run_id
            flow_run = row["prefect_flow_run_id"] or (source or {}).get("prefect_flow_run_id") or sweep["prefect_flow_run_id"] or ""
            extra_tags = {"prefect.flow_run_id": flow_run, "ttscale.status": row["status"]}
            if source is not None:
                extra_tags["ttscale.source_cell_id"] = source["cell_id"]
            _log(client, run_id, cell_params(row, sweep), cell_metrics(row, got), extra_tags)
            if artifacts:
                folder = Path(tmp) / row["cell_id"]
                folder.mkdir()
                _write_cell_results(folder, row, stored, verdicts)
                client.log_artifacts(run_id, str(folder), artifact_path="results")
            if row["status"] in _TERMINAL_RUN_STATUS:
                client.set_terminated(run_id, _TERMINAL_RUN_STATUS[row["status"]])
            cell_run_ids[row["cell_id"]] = run_id
        if artifacts:
            spec_file = Path(tmp) / "spec.yaml"
            spec_file.write_text(redact_urls(sweep["spec"]), encoding="utf-8")
            client.log_artifact(parent_id, str(spec_file))
            chart = _frontier_chart(Path(tmp), stored, sweep["name"])
            if chart is not None:
                client.log_artifact(parent_id, str(chart))
    if sweep["status"] in _TERMINAL_RUN_STATUS:
        client.set_terminated(parent_id, _TERMINAL_RUN_STATUS[sweep["status"]])
    return TrackingReport(sweep_id, True, parent_id, cell_run_ids)


def _write_cell_results(folder: Path, row: Mapping[str, Any], stored: StoredResults, verdicts: pl.DataFrame) -> None:
    """The rows a cell's numbers come from (its source's first n, for a served cell)."""
    gen_id = row["source_cell_id"] or row["cell_id"]
    n = int(row["n"])
    verdicts.filter((pl.col("cell_id") == gen_id) & (pl.col("n") <= n)).write_parquet(folder / "verdicts.parquet")
    stored.runs.filter(pl.col("cell_id") == gen_id).write_parquet(folder / "problem_runs.parquet")
    stored.candidates.filter((pl.col("cell_id") == gen_id) & (pl.col("idx") < n)).write_parquet(folder / "candidates.parquet")


def _frontier_chart(folder: Path, stored: StoredResults, title: str) -> Path | None:
    """The frontier chart of the sweep, or None when there is nothing to chart. Analysis
    errors on small or degenerate sweeps skip the chart (with a warning), not the tracking."""
    if stored.candidates.height == 0:
        return None
    try:
        built = report(stored)
        return plot_frontier(built.models, folder / "frontier.png", frontier=built.frontier, title=title)
    except (TtscaleError, pl.exceptions.PolarsError, ValueError) as err:
        logger.warning("frontier chart skipped: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
