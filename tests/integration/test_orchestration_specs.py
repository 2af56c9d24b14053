"""Sweep specs: the examples validate; bad specs are rejected by `validate` and by `submit`
naming the field, with nothing stored and nothing queued on the Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import ttscale
from tests.orchestration import SMALL_SPEC, sqlite_store
from tests.plugins.prefect_mlflow import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_demo_spec_validates_to_its_grid(tmp_path):
    got = ttscale("sweep", "validate", str(EXAMPLES / "demo.yaml"), env={"TTSCALE_HOME": str(tmp_path)})
    assert got.returncode == 0, got.stderr
    assert "cells: 6 (4 run, 2 served by the largest budget)" in got.stdout
    assert "problems per cell: 45" in got.stdout
    assert "shards: 4 of at most 45 problems" in got.stdout
    # best_of_n@8 (serving @2 and @4): 8 x 45 samples of <=192 tokens; beam search: 5 iterations
    # of N expansions (4 steps of <=64 tokens, then a roll-out of <=192), for N = 2, 4, 8.
    bon = 8 * 45
    beam = lambda n: n * 5 * 45  # noqa: E731
    beam_tokens = lambda n: (n * 4 * 64 + n * 192) * 45  # noqa: E731
    assert f"estimated generations: ≤{bon + beam(2) + beam(4) + beam(8):,}" in got.stdout
    assert f"estimated tokens: ≤{bon * 192 + beam_tokens(2) + beam_tokens(4) + beam_tokens(8):,}" in got.stdout


def test_reference_spec_is_the_published_grid(tmp_path):
    from ttscale.spec import read_sweep_file

    spec, _ = read_sweep_file(str(EXAMPLES / "reference_math500.yaml"))
    assert spec.models == ["meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"]
    assert spec.verifiers == ["rlhflow_prm"] and spec.aggregation == "last" and spec.run_on == "gpu"
    assert [s.name for s in spec.strategies] == ["best_of_n", "beam_search", "dvts"]
    assert all(s.beam_width == 4 and s.n_iterations == 40 for s in spec.strategies[1:])
    assert spec.budgets == [4, 16, 64, 256] and spec.seeds == [0, 1, 2, 3, 4]
    assert (spec.sampling.temperature, spec.sampling.top_p) == (0.8, 1.0)
    assert [d.name for d in spec.datasets] == ["math500"]
    got = ttscale("sweep", "validate", str(EXAMPLES / "reference_math500.yaml"), env={"TTSCALE_HOME": str(tmp_path)})
    assert got.returncode == 0, got.stderr
    # 2 models x 3 strategies x 4 budgets x 5 seeds; Best-of-N and DVTS below 256 are served by 256.
    assert "cells: 120 (60 run, 60 served by the largest budget)" in got.stdout
    assert "problems per cell: 500" in got.stdout and "shards: 600 of at most 50 problems" in got.stdout


def _spec(tmp_path: Path, name: str, **changes) -> Path:
    import yaml

    data = yaml.safe_load(SMALL_SPEC.format(name=name, shard_size=3))
    data.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


INVALID = [
    pytest.param(
        {"strategies": [{"name": "beamsearch"}]},
        "strategies[0]: Input tag 'beamsearch' found using 'name' does not match any of the expected tags",
        id="unknown-strategy",
    ),
    pytest.param({"budgets": [0, 4]}, "budgets: every n must be >= 1, got 0", id="budget-0"),
    pytest.param(
        {"strategies": [{"name": "dvts", "beam_width": 4}], "budgets": [4, 6]},
        "strategies[0].beam_width: every budget must be a multiple of 4, got n=6",
        id="dvts-n-not-multiple-of-m",
    ),
    pytest.param(
        {"datasets": [{"name": "jsonl", "path": "/nonexistent/ttscale/problems.jsonl"}]},
        "datasets[0].path: /nonexistent/ttscale/problems.jsonl: no such file",
        id="missing-dataset-file",
    ),
    pytest.param(
        {"verifiers": ["arithmetic", "arithmetic"]},
        "verifiers: duplicate entries ['arithmetic']; cell ",
        id="duplicate-cells",
    ),
]


def _stored(url: str) -> tuple[int, int]:
    """(sweeps, cells) in the store."""
    from ttscale import store

    engine = store.make_engine(url)
    with engine.connect() as conn:
        counts = store.read_sweeps(conn).height, store.read_cells(conn).height
    engine.dispose()
    return counts


def _prefect_counts() -> tuple[int, int]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs()), len(client.read_deployments())


@pytest.mark.parametrize("changes,message", INVALID)
def test_invalid_spec_is_rejected_with_nothing_stored_or_queued(prefect_harness, tmp_path, changes, message):
    spec = _spec(tmp_path, "bad", **changes)
    url = sqlite_store(tmp_path)
    env = {"TTSCALE_HOME": str(tmp_path / "home"), "TTSCALE_DATABASE_URL": url, "PREFECT_API_URL": prefect_harness}
    runs_before = _prefect_counts()
    for args in (["validate", str(spec)], ["submit", str(spec), "--pool", "gpu"]):
        got = ttscale("sweep", *args, env=env)
        assert got.returncode == 2, (args, got.stdout, got.stderr)
        assert "Traceback" not in got.stderr
        lines = [ln for ln in got.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, got.stderr)
    assert _stored(url) == (0, 0)
    assert _prefect_counts() == runs_before


def test_submit_to_an_unreachable_prefect_server_stores_nothing(tmp_path):
    spec = _spec(tmp_path, "good")
    url = sqlite_store(tmp_path)
    env = {"TTSCALE_HOME": str(tmp_path / "home"), "TTSCALE_DATABASE_URL": url, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    got = ttscale("sweep", "submit", str(spec), "--pool", "gpu", env=env, timeout=300)
    assert got.returncode == 1, got.stderr
    assert "error: Prefect API http://127.0.0.1:" in got.stderr and "unreachable" in got.stderr
    assert _stored(url) == (0, 0)


def test_submit_without_a_pool_or_server_is_bad_input(tmp_path):
    spec = _spec(tmp_path, "local-only")
    env = {"TTSCALE_HOME": str(tmp_path / "home")}
    got = ttscale("sweep", "submit", str(spec), env=env)
    assert got.returncode == 2 and got.stderr.strip() == "error: --pool: team mode needs a work pool (the spec's run_on is `local`)"
    got = ttscale("sweep", "submit", str(spec), "--pool", "gpu", env=env)
    assert got.returncode == 2
    assert got.stderr.strip() == "error: PREFECT_API_URL: not set; team mode submits to a Prefect server (or use `ttscale sweep run`)"
    assert json.dumps(sorted(p.name for p in (tmp_path / "home").glob("*"))) == "[]"  # nothing written
