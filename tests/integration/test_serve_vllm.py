"""`ttscale serve` on the bundled SmolLM2-135M (vLLM on CPU), through its real entry point and the real
`openai` client: an arithmetic question answered with the policy file, concurrent clients all
answered (batched searches), a bad request refused with a 4xx in OpenAI's error shape."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.serving import serving
from tests.unit.test_policy import policy_data

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUESTION = "What is 12 + 35?"


def smollm_policy() -> dict:
    """Two bins split at a mean arithmetic-verifier score of 0.5: best_of_n (weighted) for the
    easier, majority for the harder, at n = 2 and 4 — choices that reuse the probes as candidates."""
    choice = {"verifier": "arithmetic", "aggregation": "last", "accuracy": 0.5, "n_problems": 10}
    data = policy_data(model="smollm2-135m")
    data["predictor"]["bins"] = [{"bin": 1, "min_score": 0.5}, {"bin": 2, "min_score": None}]
    data["choices"] = [
        {**choice, "bin": 1, "n": n, "strategy": {"name": "best_of_n"}, "selection": "weighted"} for n in (2, 4)
    ] + [{**choice, "bin": 2, "n": n, "strategy": {"name": "majority"}, "verifier": None, "selection": "majority"} for n in (2, 4)]
    return data


def test_the_policy_is_served_to_openai_clients(vllm_settings, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(smollm_policy()), encoding="utf-8")
    env = {
        "TTSCALE_HOME": str(tmp_path / "home"),
        "TTSCALE_MODEL_CACHE": str(vllm_settings.model_cache),  # the session's converted weights
        "TTSCALE_KV_CACHE_GIB": "1",
    }
    args = ["--policy", str(policy), "--n", "2", "--probes", "2", "--max-tokens", "96"]
    with serving(args, env, tmp_path / "serve.out") as served:
        client = openai.OpenAI(base_url=served.url, api_key="x", timeout=600, max_retries=0)
        answer = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}], max_tokens=96)
        info = answer.model_extra["ttscale"]
        assert info["strategy"] == "adaptive" and info["difficulty_bin"] in (1, 2)
        assert info["chosen"]["name"] == ("best_of_n" if info["difficulty_bin"] == 1 else "majority")
        assert info["n"] == 2 and info["n_candidates"] == 2 and info["budget"]["n_generations"] == 2  # the 2 probes are the candidates
        budget = info["budget"]
        assert 0 < budget["n_generated_tokens"] <= 2 * 96 and answer.usage.completion_tokens == budget["n_generated_tokens"]
        # Charged FLOPs: 2 · parameters · generated tokens; the arithmetic verifier has no model.
        assert budget["policy_flops"] > 0 and budget["policy_flops"] % (2 * budget["n_generated_tokens"]) == 0
        assert budget["flops"] == budget["policy_flops"] + budget["verifier_flops"]
        assert answer.choices[0].message.content and answer.choices[0].finish_reason in ("stop", "length")

        # Concurrent clients of one cell: every one answered; requests that shared a search say so.
        def ask(i: int):
            return client.chat.completions.create(
                model="smollm2-135m", messages=[{"role": "user", "content": f"What is {i} + {i + 3}?"}], max_tokens=64,
                extra_body={"ttscale": {"strategy": "best_of_n", "n": 2}},
            )  # fmt: skip

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, range(4)))
        assert len({a.id for a in answers}) == 4 and all(a.choices[0].message.content for a in answers)
        sizes = Counter(a.model_extra["ttscale"]["batch_size"] for a in answers)
        assert all(count % size == 0 for size, count in sizes.items()), sizes  # b requests report each batch of b

        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                           extra_body={"ttscale": {"strategy": "best_of_nn"}})  # fmt: skip
        assert refused.value.body["code"] == "unknown_strategy"
        assert refused.value.body["message"].startswith("ttscale.strategy: unknown strategy 'best_of_nn' (did you mean 'best_of_n'?)")
        malformed = httpx.post(f"{served.url}/chat/completions", content=b'{"messages": [', timeout=30)
        assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_json"
    assert served.proc.returncode == 0, served.output()[-3000:]
