"""The self-verifier and the RLHFlow PRM path on the real vLLM engine, with the bundled
SmolLM2-135M standing in for the judge (its scores carry no meaning; the plumbing does: one
score per new step, each in [0, 1], read at the right token). The real PRMs run on GPU
workers (`gpu` marker)."""

from __future__ import annotations

import pytest

from ttscale.verifiers import load_verifier
from ttscale.verifiers.prm import RlhflowPRM, plus_minus_scores, rlhflow_conversation, rlhflow_prompt
from ttscale.verifiers.self_verifier import SelfVerifier, yes_probability

PROBLEMS = ["Tom has 3 apples and buys 4 more. How many apples does he have?", "What is 6 times 7?"]
SOLUTIONS = [
    ["Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is \\boxed{7}."],
    ["6 times 7 is 48.", "The answer is \\boxed{48}."],
]


@pytest.mark.vllm
def test_self_verifier_scores_each_new_step_in_one_call(vllm_policy, vllm_settings):
    verifier = load_verifier("self", vllm_policy, vllm_settings)
    assert isinstance(verifier, SelfVerifier) and verifier.n_params == vllm_policy.n_params
    # Each call from an empty prefix cache: KV blocks cached by another call were computed in
    # another batch, and in bf16 the rest of a prompt then rounds differently (see
    # tests/plugins/vllm_engine.py, reset_server_prefix_cache).
    assert vllm_policy.reset_prefix_cache()
    got = verifier.score(PROBLEMS, SOLUTIONS, [0, 1])
    assert [len(g.scores) for g in got] == [3, 1]
    scores = [s for g in got for s in g.scores]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert any(s != 0.5 for s in scores)  # Yes/No were among the model's top tokens
    prompts = verifier.prompts(PROBLEMS[1], SOLUTIONS[1], 1)
    assert got[1].n_tokens == sum(vllm_policy.count_tokens(prompts))
    # causal: step 2 of solution 2 scores the same whether or not step 1 is scored with it
    assert vllm_policy.reset_prefix_cache()
    again = verifier.score(PROBLEMS[1:], SOLUTIONS[1:], [0])[0]
    assert again.scores[1] == pytest.approx(got[1].scores[0], abs=1e-4)
    assert vllm_policy.reset_prefix_cache()
    assert again.scores[1] == pytest.approx(yes_probability(vllm_policy.next_token_logprobs(prompts, 20)[0]), abs=1e-4)


@pytest.mark.vllm
def test_rlhflow_prm_reads_one_plus_per_step(vllm_policy):
    prm = RlhflowPRM(vllm_policy)  # the bundled model standing in for the 8B PRM
    got = prm.score(PROBLEMS, SOLUTIONS, [0, 1])
    assert [len(g.scores) for g in got] == [3, 1]
    assert all(0.0 <= s <= 1.0 for g in got for s in g.scores)
    tagged = rlhflow_prompt(vllm_policy.tokenizer, PROBLEMS[0], SOLUTIONS[0])
    assert got[0].n_tokens == len(tagged.token_ids)
    assert [tagged.token_ids[p] for p in tagged.tag_positions] == [prm.plus_id] * 3
    # The '+' after step 2 is predicted from the conversation up to step 2's generation prompt:
    # scoring that prefix + '+' on its own gives the same logprob at its last position.
    head = vllm_policy.chat_prompt(rlhflow_conversation(PROBLEMS[0], SOLUTIONS[0])[:3])
    alone = vllm_policy.prompt_logprobs([vllm_policy.tokenize([head])[0] + [prm.plus_id]], prm.top_k)[0]
    assert len(alone) - 1 == tagged.tag_positions[1]
    expected = plus_minus_scores(alone, [len(alone) - 1], prm.plus_id, prm.minus_id)[0]
    assert got[0].scores[1] == pytest.approx(expected, abs=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["rlhflow_prm", "qwen_prm"])
def test_real_prm_prefers_a_correct_step(name, vllm_settings):
    """On a GPU worker: the real PRM scores a correct step above an arithmetic error."""
    import torch

    from ttscale.backends.vllm_engine import get_policy

    if not torch.cuda.is_available():
        pytest.fail("gpu test needs a CUDA device (deselect with -m 'not gpu')")
    policy = get_policy("llama-3.2-1b", vllm_settings)
    prm = load_verifier(name, policy, vllm_settings)
    good = ["Tom starts with 3 apples.", "He buys 4 more, so he has 3 + 4 = 7 apples.", "The answer is $\\boxed{7}$."]
    bad = ["Tom starts with 3 apples.", "He buys 4 more, so he has 3 + 4 = 9 apples.", "The answer is $\\boxed{9}$."]
    got = prm.score([PROBLEMS[0], PROBLEMS[0]], [good, bad], [0, 0])
    assert [len(g.scores) for g in got] == [3, 3]
    assert got[0].scores[1] > got[1].scores[1] + 0.2
    assert got[0].scores[0] == pytest.approx(got[1].scores[0], abs=1e-3)  # same first step, causal


# --- the Qwen PRM's pooling path, end to end on a tiny random-weight Qwen2ForProcessRewardModel ----


@pytest.fixture(scope="module")
def tiny_qwen_prm(tmp_path_factory, vllm_settings):
    """A 2-layer Qwen2ForProcessRewardModel with random weights and SmolLM2's tokenizer plus the
    `<extra_0>` step tag, and a torch reference of its per-tag logits."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Qwen2Config, Qwen2Model

    from ttscale.models import ensure_local_weights, resolve_model

    folder = tmp_path_factory.mktemp("tiny-qwen-prm")
    tok = AutoTokenizer.from_pretrained(ensure_local_weights(resolve_model("smollm2-135m"), vllm_settings))
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    tok.save_pretrained(folder)
    # head_dim 64: vLLM's CPU attention kernels support no smaller head
    config = Qwen2Config(vocab_size=49216, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         tie_word_embeddings=False, torch_dtype="float32")
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.num_labels = 2
    torch.manual_seed(0)
    backbone = Qwen2Model(config).eval()
    head = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2))
    tensors = {f"model.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    tensors.update({f"score.{k}": v.contiguous() for k, v in head.state_dict().items()})
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(folder)

    def reference(ids: list[int], tag: int) -> list[list[float]]:
        with torch.no_grad():
            hidden = backbone(torch.tensor([ids])).last_hidden_state[0]
            logits = head(hidden)
        return [logits[i].tolist() for i, t in enumerate(ids) if t == tag]

    return folder, reference


@pytest.mark.vllm
@pytest.mark.slow
def test_qwen_prm_pooling_path_matches_a_torch_forward(tiny_qwen_prm, vllm_settings):
    from ttscale.backends.vllm_engine import get_reward_model
    from ttscale.verifiers.prm import QwenMathPRM, qwen_prm_prompt, step_probabilities

    folder, reference = tiny_qwen_prm
    engine = get_reward_model(str(folder), vllm_settings)
    prm = QwenMathPRM(engine)
    assert prm.tag_id == engine.tokenizer.convert_tokens_to_ids("<extra_0>")
    got = prm.score(PROBLEMS, SOLUTIONS, [0, 1])
    assert [len(g.scores) for g in got] == [3, 1]
    for i, g in enumerate(got):
        ids = qwen_prm_prompt(engine.tokenizer, PROBLEMS[i], SOLUTIONS[i])
        expected = step_probabilities(reference(ids, prm.tag_id))[[0, 1][i]:]
        assert g.scores == pytest.approx(expected, abs=1e-3)
        assert g.n_tokens == len(ids)
    engine.shutdown()
