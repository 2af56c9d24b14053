"""The `Policy` contract over HTTP against a real vLLM server on loopback, compared with the
in-process engine on the same weights."""

from __future__ import annotations

import dataclasses

import pytest

from ttscale.backends.base import GenerationRequest, Policy
from ttscale.backends.openai_http import OpenAIPolicy
from ttscale.models import resolve_model
from tests.plugins.vllm_engine import reset_server_prefix_cache

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUESTIONS = ["What is 11 + 14? Explain step by step.", "Name a colour.", "Say hello."]


@pytest.fixture(scope="module")
def http_policy(vllm_server_url, vllm_settings):
    settings = dataclasses.replace(vllm_settings, vllm_server_url=vllm_server_url)
    policy = OpenAIPolicy.for_model(resolve_model("smollm2-135m"), settings, max_connections=4)
    yield policy
    policy.close()


def test_http_policy_knows_the_served_model(http_policy, vllm_server_url):
    assert isinstance(http_policy, Policy)
    assert http_policy.model == "smollm2-135m"
    assert http_policy.served_model.endswith("/smollm2-135m")  # the server names the converted folder
    assert http_policy.n_params == 134_515_008
    # without the registry's help the count comes from the served folder's safetensors headers
    assert OpenAIPolicy(vllm_server_url).n_params == 134_515_008


def test_chat_and_token_counts_match_the_engine(http_policy, vllm_policy):
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    assert http_policy.chat_prompt(messages) == vllm_policy.chat_prompt(messages)
    texts = [vllm_policy.chat_prompt([{"role": "user", "content": q}]) for q in QUESTIONS] + ["hello world"]
    assert http_policy.count_tokens(texts) == vllm_policy.count_tokens(texts)


def test_samples_stops_and_token_counts(http_policy, vllm_policy):
    prompts = [vllm_policy.chat_prompt([{"role": "user", "content": q}]) for q in QUESTIONS]
    stops = [" ", "\n\n"]  # a space comes within a few tokens of nearly every sample
    got = http_policy.generate(GenerationRequest(tuple(prompts), n=3, max_tokens=24, temperature=0.8, stop=tuple(stops), seed=0))
    assert [len(row) for row in got] == [3, 3, 3]
    for row, n_prompt in zip(got, vllm_policy.count_tokens(prompts), strict=True):
        for c in row:
            assert c.n_prompt_tokens == n_prompt
            assert 1 <= c.n_generated_tokens <= 24
            if c.finish_reason == "step":
                end = next(s for s in stops if c.text.endswith(s))
                assert not any(s in c.text[: -len(end)] for s in stops)  # cut at the first stop, kept
            elif c.finish_reason == "length":
                assert c.n_generated_tokens == 24
            else:
                assert c.n_generated_tokens == vllm_policy.count_tokens([c.text])[0] + 1  # EOS charged
    assert sum(c.finish_reason == "step" for row in got for c in row) >= 5


def test_greedy_over_http_equals_the_in_process_engine(http_policy, vllm_policy, vllm_server_url):
    prompts = [vllm_policy.chat_prompt([{"role": "user", "content": q}]) for q in QUESTIONS]
    request = GenerationRequest(tuple(prompts), n=1, max_tokens=24, temperature=0.0, stop=("\n\n",), seed=0)
    # each side from an empty prefix cache (tests/plugins/vllm_engine.py: reset_server_prefix_cache)
    reset_server_prefix_cache(vllm_server_url)
    over_http = http_policy.generate(request)
    reset_server_prefix_cache(vllm_server_url)
    assert http_policy.generate(request) == over_http
    assert vllm_policy.reset_prefix_cache()
    in_process = vllm_policy.generate(request)
    assert [(c[0].text, c[0].finish_reason, c[0].n_generated_tokens) for c in over_http] == [
        (c[0].text, c[0].finish_reason, c[0].n_generated_tokens) for c in in_process
    ]


def test_next_token_logprobs_match_the_engine(http_policy, vllm_policy, vllm_server_url):
    prompts = [vllm_policy.chat_prompt([{"role": "user", "content": q}]) for q in QUESTIONS[:2]]
    reset_server_prefix_cache(vllm_server_url)
    assert vllm_policy.reset_prefix_cache()
    remotes, locals_ = http_policy.next_token_logprobs(prompts, 5), vllm_policy.next_token_logprobs(prompts, 5)
    for remote, local in zip(remotes, locals_, strict=True):
        assert len(remote) == 5 and max(remote, key=remote.get) == max(local, key=local.get)
        shared = set(remote) & set(local)
        assert len(shared) >= 4
        # Two engines: float32 CPUs agree to ~1e-4; in bfloat16 (AVX-512 CPUs) logits of ~20 carry
        # ~0.1 of rounding, and the two engines' normalisers differ by up to that (measured 0.099).
        tolerance = 1e-3 if vllm_policy.dtype == "float32" else 0.15
        assert [remote[t] for t in shared] == pytest.approx([local[t] for t in shared], abs=tolerance)
