"""Shared fixtures. Service fixtures (PostgreSQL, the vLLM engine, Prefect, MLflow) live in
tests/plugins/, one module per service, started once per session."""

pytest_plugins = ["tests.plugins.postgres", "tests.plugins.prefect_mlflow", "tests.plugins.vllm_engine"]
