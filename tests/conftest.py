"""Shared fixtures. Service fixtures (PostgreSQL, the vLLM engine, Prefect, MLflow) live in
tests/plugins/, one module per service, started once per session."""

from hypothesis import HealthCheck, settings


pytest_plugins = ["tests.plugins.postgres", "tests.plugins.prefect_mlflow", "tests.plugins.vllm_engine"]

# Hypothesis' default 200 ms deadline and its too-slow health check time each example: on a loaded
# machine a correct test fails. Properties are checked here, speed lives in benchmarks/.
settings.register_profile("ttscale", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ttscale")
