"""Links to a run's pages in MLflow's and Prefect's UIs, from the ids the store keeps.

A link needs a server: an `http(s)` MLflow tracking URI, a Prefect API URL. Without one
(the embedded default: MLflow in SQLite, a temporary Prefect server) the page shows the id
and how to look it up instead.
"""

from __future__ import annotations

from urllib.parse import quote


def mlflow_run(tracking_uri: str | None, run_id: str | None) -> str | None:
    """`<server>/#/runs/<id>` (MLflow's UI redirects to the run's experiment page)."""
    if not run_id or not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/runs/{quote(run_id)}"


def prefect_flow_run(api_url: str | None, flow_run_id: str | None) -> str | None:
    """`<ui>/runs/flow-run/<id>`; the UI is served where the API is, without `/api`."""
    if not flow_run_id or not api_url or not api_url.startswith(("http://", "https://")):
        return None
    base = api_url.rstrip("/")
    if base.endswith("/api"):
        base = base[: -len("/api")]
    return f"{base}/runs/flow-run/{quote(flow_run_id)}"


def mlflow_hint(tracking_uri: str | None) -> str:
    return f"open it with `mlflow ui --backend-store-uri {tracking_uri}` and go to `/#/runs/<id>`"


def prefect_hint() -> str:
    return "the sweep ran on a temporary local Prefect server; `prefect flow-run inspect <id>` with the same PREFECT_HOME shows it"
