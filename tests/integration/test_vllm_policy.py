"""The `Policy` contract on the real vLLM engine (bundled SmolLM2-135M on CPU)."""

from __future__ import annotations

import math

import pytest

from ttscale.backends.base import Completion, GenerationRequest, Policy

pytestmark = pytest.mark.vllm

QUESTIONS = [
    "What is 11 + 14? Explain step by step.",
    "Name a colour.",
    "A shop sells pens at 3 dollars each. How much do 7 pens cost? Explain step by step.",
    "Say hello.",
]


def chat(policy, question: str) -> str:
    return policy.chat_prompt([{"role": "user", "content": question}])


def greedy(policy, prompts, *, stop=None, max_tokens=48) -> list[Completion]:
    got = policy.generate(GenerationRequest(tuple(prompts), n=1, max_tokens=max_tokens, temperature=0.0, stop=tuple(stop) if stop else None, seed=0))
    return [row[0] for row in got]


def test_satisfies_the_policy_protocol(vllm_policy):
    assert isinstance(vllm_policy, Policy)
    assert vllm_policy.model == "smollm2-135m"
    assert vllm_policy.n_params == 134_515_008


def test_converted_weights_record_their_parameter_count(vllm_policy, vllm_settings):
    from ttscale.models import converted_marker, count_parameters

    folder = vllm_settings.model_cache / "smollm2-135m"
    assert vllm_policy.path == str(folder)
    assert converted_marker(folder)["n_params"] == count_parameters(folder) == vllm_policy.n_params


def test_chat_prompt_renders_the_template_for_the_assistant_turn(vllm_policy):
    prompt = chat(vllm_policy, "Hi")
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_n_samples_per_prompt_in_prompt_order(vllm_policy):
    prompts = [chat(vllm_policy, q) for q in QUESTIONS]
    got = vllm_policy.generate(GenerationRequest(tuple(prompts), n=3, max_tokens=12, temperature=0.8, seed=0))
    assert [len(row) for row in got] == [3, 3, 3, 3]
    lengths = [len(ids) for ids in vllm_policy.tokenize(prompts)]
    assert len(set(lengths)) == len(lengths)  # distinct, so a reordered batch would show
    for row, n_prompt in zip(got, lengths, strict=True):
        for c in row:
            assert c.n_prompt_tokens == n_prompt
            assert 1 <= c.n_generated_tokens <= 12
            # a cut completion used every token; a full-length one may still have ended on EOS
            assert c.finish_reason != "length" or c.n_generated_tokens == 12


def test_prompt_tokens_match_count_tokens(vllm_policy):
    prompts = [chat(vllm_policy, q) for q in QUESTIONS[:2]]
    got = greedy(vllm_policy, prompts, max_tokens=1)
    # SmolLM2 adds no BOS: the engine reads exactly the prompt's own tokens.
    assert [c.n_prompt_tokens for c in got] == vllm_policy.count_tokens(prompts)
    assert vllm_policy.count_tokens(["", "hello world"]) == [0, 2]


def test_stop_string_is_kept_and_ends_the_step(vllm_policy):
    prompt = chat(vllm_policy, QUESTIONS[2])
    (free,) = greedy(vllm_policy, [prompt], max_tokens=40)
    words = free.text.split(" ")
    assert len(words) > 4, free.text
    stop = " " + words[3]  # a string greedy decoding is known to produce
    cut = free.text.index(stop) + len(stop)
    (stopped,) = greedy(vllm_policy, [prompt], stop=[stop], max_tokens=40)
    assert stopped.text == free.text[:cut]
    assert stopped.finish_reason == "step"
    assert stopped.n_generated_tokens < free.n_generated_tokens


def test_length_and_eos_finish_reasons(vllm_policy):
    prompts = [chat(vllm_policy, q) for q in QUESTIONS]
    short = greedy(vllm_policy, prompts, max_tokens=3)
    assert [c.finish_reason for c in short] == ["length"] * 4
    assert [c.n_generated_tokens for c in short] == [3] * 4
    full = greedy(vllm_policy, prompts, max_tokens=160)
    eos = [c for c in full if c.finish_reason == "eos"]
    assert eos, [c.text for c in full]  # short questions get a complete answer
    for c in eos:
        assert "<|im_end|>" not in c.text
        assert c.n_generated_tokens < 160
        # the EOS token is generated (and charged) but not part of the text
        assert c.n_generated_tokens == vllm_policy.count_tokens([c.text])[0] + 1


def test_greedy_decoding_repeats(vllm_policy):
    prompts = [chat(vllm_policy, q) for q in QUESTIONS[:3]]
    # the same batch from the same (empty) cache: blocks cached by the first call would be read
    # by the second, and bf16 rounds the rest of the prompt differently (reset_server_prefix_cache)
    assert vllm_policy.reset_prefix_cache()
    first = greedy(vllm_policy, prompts, stop=["\n\n"], max_tokens=32)
    assert vllm_policy.reset_prefix_cache()
    second = greedy(vllm_policy, prompts, stop=["\n\n"], max_tokens=32)
    assert first == second
    for c in first:
        if c.finish_reason == "step":
            assert c.text.endswith("\n\n") and c.text.count("\n\n") == 1


def test_prefix_cache_serves_a_repeated_long_prompt(vllm_policy):
    prompt = chat(vllm_policy, "Read this carefully. " * 80 + "What is 2 + 2?")
    assert vllm_policy.count_tokens([prompt])[0] > 256
    greedy(vllm_policy, [prompt], max_tokens=2)
    (again,) = greedy(vllm_policy, [prompt + "4"], max_tokens=2)
    assert again.n_cached_prompt_tokens >= 256  # whole 128-token blocks of the shared prefix


def test_a_grown_path_is_sent_as_the_engines_own_tokens_and_hits_the_cache(vllm_policy):
    prompt = chat(vllm_policy, "Read this carefully. " * 20 + QUESTIONS[2])
    (step,) = greedy(vllm_policy, [prompt], stop=["\n\n"], max_tokens=48)
    assert step.finish_reason in ("step", "length") and step.n_generated_tokens > 0
    (grown,) = greedy(vllm_policy, [prompt + step.text], stop=["\n\n"], max_tokens=8)
    # the prompt ids + the generated ids, not a re-tokenisation of the text
    assert grown.n_prompt_tokens == step.n_prompt_tokens + step.n_generated_tokens
    block = vllm_policy.kv_block_size
    # every whole block is served from the cache, the blocks filled while generating the step included
    assert grown.n_cached_prompt_tokens == (grown.n_prompt_tokens - 1) // block * block


def test_next_token_logprobs_rank_the_greedy_token_first(vllm_policy):
    prompts = [chat(vllm_policy, q) for q in QUESTIONS[:2]]
    tops = vllm_policy.next_token_logprobs(prompts, 5)
    firsts = greedy(vllm_policy, prompts, max_tokens=1)
    for top, first in zip(tops, firsts, strict=True):
        assert 1 <= len(top) <= 5
        assert all(lp <= 0.0 for lp in top.values())
        assert sum(math.exp(lp) for lp in top.values()) <= 1.0 + 1e-4
        assert max(top, key=top.get) == first.text


def test_prompt_logprobs_agree_with_next_token_logprobs(vllm_policy):
    prompt = chat(vllm_policy, QUESTIONS[1])
    # Computed from scratch, as prompt_logprobs always is (vLLM reads no cached prefix for it): KV
    # blocks cached by earlier calls were computed in other batches, and bf16 rounds them differently.
    assert vllm_policy.reset_prefix_cache()
    top = vllm_policy.next_token_logprobs([prompt], 5)[0]
    token_text, logprob = max(top.items(), key=lambda kv: kv[1])
    ids = vllm_policy.tokenize([prompt])[0]
    token_id = vllm_policy.tokenizer.encode(token_text, add_special_tokens=False)
    assert len(token_id) == 1
    rows = vllm_policy.prompt_logprobs([ids + token_id], 3)[0]
    assert len(rows) == len(ids) + 1
    assert rows[0].logprob is None and [r.token_id for r in rows] == ids + token_id
    assert rows[-1].logprob == pytest.approx(logprob, abs=1e-3)
    assert max(rows[-1].top, key=rows[-1].top.get) == token_id[0]
