"""The real vLLM engine on the bundled SmolLM2-135M, built once per test session.

Tests that use `vllm_policy` carry the `vllm` marker. The converted weights live in the
model cache of `TTSCALE_HOME` (default: the repository's .ttscale/), so only the first run
on a machine pays for the GGUF conversion (~1 min); the engine itself starts in 20-30 s on
an idle 2-core CPU (eager mode), several minutes on a busy one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ttscale.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def vllm_settings() -> Settings:
    env = dict(os.environ)
    env.setdefault("TTSCALE_HOME", str(REPO / ".ttscale"))
    env.setdefault("TTSCALE_KV_CACHE_GIB", "2")
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def vllm_policy(vllm_settings: Settings) -> Iterator[object]:
    from ttscale.backends.vllm_engine import get_policy, shutdown_all

    policy = get_policy("smollm2-135m", vllm_settings, seed=0)
    yield policy
    shutdown_all()


@pytest.fixture(scope="session")
def vllm_server_url(vllm_settings: Settings, tmp_path_factory) -> Iterator[str]:
    """A real OpenAI-compatible vLLM server on loopback serving the bundled model (its own engine
    process: ready in ~40 s on an idle 2-core CPU). Yields the `/v1` base URL."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from ttscale.backends.vllm_core import resolve_kv_block_size
    from ttscale.backends.vllm_engine import engine_dtype
    from ttscale.models import ensure_local_weights, resolve_model

    path = ensure_local_weights(resolve_model("smollm2-135m"), vllm_settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ)
    env.update({
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(vllm_settings.home / "vllm-cache"),
        "VLLM_CONFIG_ROOT": str(vllm_settings.home / "vllm-config"),
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
        # POST /reset_prefix_cache (`reset_server_prefix_cache`): tests comparing greedy texts
        # empty both engines' caches first (see there).
        "VLLM_SERVER_DEV_MODE": "1",
    })
    # The `vllm` console script of vllm-cpu fails (PackageNotFoundError): run the module.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(path),
           "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
           # vLLM's "auto" runs a float32 checkpoint in bf16 on CPU; pick the dtype the engine does
           "--dtype", engine_dtype("auto")]
    block = resolve_kv_block_size(None)  # the in-process engine's block size, so both cache alike
    if block is not None:
        cmd += ["--block-size", str(block)]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}; log: {log_path}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready after 600 s; log: {log_path}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reset_server_prefix_cache(base_url: str) -> None:
    """Empty the test server's prefix cache (its dev-mode endpoint).

    Greedy decoding on vLLM-CPU repeats only for the same batch and the same cache state: KV
    blocks served from the cache were computed in another batch, and in bfloat16 the prompt's
    remaining tokens then round differently, which can flip a near-tie. Tests that compare greedy
    texts or logprobs across calls or engines start both from an empty cache."""
    import httpx

    root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
    httpx.post(f"{root}/reset_prefix_cache", timeout=30).raise_for_status()
