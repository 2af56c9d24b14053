"""Deployment settings, read from the environment once at the edges and passed down.

Only *where things are* comes from the environment (database, tracking server, Prefect API,
a shared vLLM server, the data directory); behaviour is configured in specs and options.
Every variable is named `TTSCALE_*`, except the two that MLflow and Prefect define themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

# Documented in docs/settings.md; tests/unit/test_settings_docs.py fails if a variable is missing there.
ENV_VARS = {
    "TTSCALE_HOME": "Project data directory (SQLite store, MLflow DB, Prefect home, model cache, command logs). Default: ./.ttscale",
    "TTSCALE_DATABASE_URL": "Results store URL. Default: sqlite:///$TTSCALE_HOME/ttscale.db; team: postgresql+psycopg://...",
    "TTSCALE_DASHBOARD_DATABASE_URL": "Read-only store URL the dashboard uses (role ttscale_reader). Default: the store URL",
    "TTSCALE_MODEL_CACHE": "Where converted models live. Default: $TTSCALE_HOME/models",
    "TTSCALE_VLLM_SERVER_URL": "OpenAI-compatible vLLM server for the `openai` backend, e.g. http://127.0.0.1:8000/v1",
    "TTSCALE_KV_CACHE_GIB": "KV-cache size for vLLM on CPU, GiB (VLLM_CPU_KVCACHE_SPACE). Default: 4",
    "TTSCALE_GPU_SLOT": "Set by `ttscale worker` in each worker process: the GPU slot (<host>-<gpu>) it serves. Not for users",
    "MLFLOW_TRACKING_URI": "MLflow tracking store. Default: sqlite:///$TTSCALE_HOME/mlflow.db",
    "PREFECT_API_URL": "Prefect server for team mode. Unset: a temporary local server under $TTSCALE_HOME/prefect",
}


@dataclass(frozen=True)
class Settings:
    """Where things are, as one typed object: the edges build it once (`from_env`) and pass it
    down; nothing below them reads the environment for these."""

    home: Path
    """The project data directory (`TTSCALE_HOME`)."""
    database_url: str
    """The results store."""
    dashboard_database_url: str
    """The store URL the dashboard reads through (a read-only role on a team install)."""
    model_cache: Path
    mlflow_tracking_uri: str
    prefect_api_url: str | None
    """None: a temporary local Prefect server (local mode)."""
    vllm_server_url: str | None
    """A shared OpenAI-compatible vLLM server for the policy; None: an engine in this process."""
    kv_cache_gib: float = 4.0
    """vLLM's KV cache on CPU, GiB."""

    def with_database(self, url: str) -> Settings:
        """These settings with another store (`--db`), which the dashboard then reads too."""
        return replace(self, database_url=url, dashboard_database_url=url)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("TTSCALE_HOME") or ".ttscale").absolute()
        db = env.get("TTSCALE_DATABASE_URL") or f"sqlite:///{home / 'ttscale.db'}"
        return cls(
            home=home,
            database_url=db,
            dashboard_database_url=env.get("TTSCALE_DASHBOARD_DATABASE_URL") or db,
            model_cache=Path(env.get("TTSCALE_MODEL_CACHE") or home / "models").absolute(),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
            prefect_api_url=env.get("PREFECT_API_URL") or None,
            vllm_server_url=env.get("TTSCALE_VLLM_SERVER_URL") or None,
            kv_cache_gib=float(env.get("TTSCALE_KV_CACHE_GIB") or 4.0),
        )
