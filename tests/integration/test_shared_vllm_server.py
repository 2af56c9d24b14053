"""Shared-vLLM-server mode end to end: `ttscale sweep run` with TTSCALE_VLLM_SERVER_URL set sends
every generation to a real OpenAI-compatible vLLM server on loopback (the session's server from
tests/plugins/vllm_engine.py, serving the bundled SmolLM2-135M) and stores the candidates
(Best-of-N at N=2, sampled); with greedy decoding (N=1) they are the very texts the in-process
engine writes for the same prompts.

Sampled candidates are not compared: vLLM-CPU sampling is not repeatable even with a seed (see
platform/ttscale/backends/vllm_engine.py and docs/deploy.md), so two sampled runs differ whichever
backend serves them.
"""

from __future__ import annotations

import re
import time

import httpx
import polars as pl
import pytest

from tests.cli import ttscale
from tests.orchestration import env_for, read_all, sqlite_store

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# 3 one-operation arithmetic problems, Best-of-N scored by the arithmetic verifier.
SPEC = """\
name: {name}
models: [smollm2-135m]
verifiers: [arithmetic]
strategies:
  - name: best_of_n
budgets: [{n}]
datasets:
  - name: arith
    levels: [1]
    limit: 3
seeds: [0]
sampling:
  temperature: {temperature}
  max_tokens: 96
shard_size: 1
retries: 0
"""

SUCCESS_METRIC = re.compile(r"^vllm:request_success_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.MULTILINE)


def served_requests(base_url: str) -> float:
    """Requests the server finished so far (its Prometheus `/metrics`), summed over finish reasons."""
    root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
    text = httpx.get(f"{root}/metrics", timeout=10).text
    values = SUCCESS_METRIC.findall(text)
    assert values, "vllm:request_success_total missing from the server's /metrics"
    return sum(float(v) for v in values)


def sweep_over_server(tmp_path, mlflow_uri: str, server_url: str, *, name: str, n: int, temperature: float) -> dict:
    """`ttscale sweep run` of a tiny spec with TTSCALE_VLLM_SERVER_URL set; the stored frames."""
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, n=n, temperature=temperature), encoding="utf-8")
    url = sqlite_store(tmp_path)
    # An empty model cache: in HTTP mode the sweep resolves the model by name and loads no weights.
    cache = tmp_path / "empty-model-cache"
    env = env_for(tmp_path / "home", url, mlflow_uri, TTSCALE_VLLM_SERVER_URL=server_url, TTSCALE_MODEL_CACHE=str(cache))
    before = served_requests(server_url)
    start = time.monotonic()
    got = ttscale("sweep", "run", str(spec), env=env, timeout=1500)
    elapsed = time.monotonic() - start
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-5000:]
    # One /v1/completions request per problem (n samples each) reached the server.
    assert served_requests(server_url) - before >= 3
    assert not cache.exists() or not any(cache.iterdir())
    sweep_id = read_all(url, "")["sweeps"]["sweep_id"][0]
    data = read_all(url, sweep_id)
    cell = data["cells"].row(0, named=True)
    assert data["cells"].height == 1 and cell["status"] == "done", data["cells"]
    assert cell["model"] == "smollm2-135m"
    assert cell["policy_params"] == 134_515_008  # the bundled SmolLM2-135M, recorded under its name
    cands = data["candidates"]
    assert cands.group_by("problem_id").len()["len"].to_list() == [n] * 3
    assert cands["n_generated_tokens"].min() > 0
    assert cell["n_generated_tokens"] == data["runs"]["n_generated_tokens"].sum() > 0
    assert data["verdicts"].filter(pl.col("n") == n).height == 3 * 4  # naive, weighted, majority, pass
    print(f"\n{name}: `ttscale sweep run` took {elapsed:.1f} s for {cands.height} candidates")
    return data


def test_sampled_sweep_over_the_shared_server_is_stored(tmp_path, mlflow_uri, vllm_server_url):
    data = sweep_over_server(tmp_path, mlflow_uri, vllm_server_url, name="shared-server-sampled", n=2, temperature=0.8)
    assert data["candidates"]["answer"].is_not_null().sum() > 0  # graded like any other run


def test_greedy_sweep_over_the_shared_server_equals_the_in_process_engine(
    tmp_path, mlflow_uri, vllm_server_url, vllm_settings, vllm_policy
):
    """Greedy decoding at N=1: N greedy samples would be N copies of one text anyway.

    Greedy on vLLM-CPU repeats only for the same batch: a prompt decoded beside others can take
    another token where two logits nearly tie (seen in CI: one problem of three flipped). So
    both sides decode one problem at a time: shards of one problem over HTTP (the sweep runs
    its shards in turn), one `search_shard` per problem in process."""
    from ttscale.planning import prepare_cell
    from ttscale.prompting import PromptBuilder
    from ttscale.runner import CellRuntime, search_shard
    from ttscale.spec import as_cell
    from ttscale.verifiers import load_verifier

    data = sweep_over_server(tmp_path, mlflow_uri, vllm_server_url, name="shared-server-greedy", n=1, temperature=0.0)
    cell = as_cell(data["cells"]["spec"][0])
    prepared = prepare_cell(cell, vllm_settings)
    info = prepared.model_info
    prompts = PromptBuilder(chat=vllm_policy.chat_prompt, format=info.prompt_format, system=info.system_prompt)
    verifier = load_verifier(cell.verifier, vllm_policy, vllm_settings)
    runtime = CellRuntime(prepared, vllm_policy, verifier, prompts)
    in_process = sorted(
        (r.problem_id, c.index, c.text, c.finish_reason, c.n_generated_tokens, c.answer)
        for problem in prepared.problems
        for r in search_shard(cell, [problem], runtime).results
        for c in r.candidates
    )
    cols = ["problem_id", "idx", "text", "finish_reason", "n_generated_tokens", "answer"]
    over_http = sorted(data["candidates"].select(cols).rows())
    assert over_http == in_process
