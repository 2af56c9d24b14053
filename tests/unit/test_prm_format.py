"""PRM and self-verifier prompt formatting and score extraction, on a real (tiny, character-level)
HF fast tokenizer and on synthetic model outputs. The real engines are tested in
tests/integration/test_llm_verifiers.py (the bundled model standing in) and, for the real PRMs,
on GPU workers."""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ttscale.backends.vllm_engine import PositionLogprobs, finish_reason, logsumexp
from ttscale.errors import BackendError
from ttscale.verifiers import load_verifier
from ttscale.verifiers.prm import (
    QWEN_PRM_SYSTEM_PROMPT,
    QWEN_STEP_TAG,
    QwenMathPRM,
    RlhflowPRM,
    plus_minus_scores,
    qwen_prm_messages,
    qwen_prm_prompt,
    rlhflow_conversation,
    rlhflow_prompt,
    step_probabilities,
)
from ttscale.verifiers.self_verifier import yes_probability

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def char_tokenizer(extra_tokens: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """One token per character, ChatML special tokens and `<extra_0>` as single tokens."""
    vocab = {c: i for i, c in enumerate(sorted(set(string.printable)))}
    vocab["[UNK]"] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", QWEN_STEP_TAG, *extra_tokens]})
    tok.chat_template = CHATML
    return tok


PROBLEM = "What is 2 + 3 * 4?"
STEPS = ["First 3 * 4 = 12.", "Then 2 + 12 = 14.", "The answer is 14."]


def test_rlhflow_conversation_alternates_steps_and_plus():
    conv = rlhflow_conversation(PROBLEM, STEPS)
    assert [m["role"] for m in conv] == ["user", "assistant"] * 3
    assert conv[0]["content"] == f"{PROBLEM} {STEPS[0]}"  # the reference joins problem and first step with a space
    assert [m["content"] for m in conv[2::2]] == STEPS[1:]
    assert {m["content"] for m in conv[1::2]} == {"+"}


def test_rlhflow_prompt_finds_the_plus_after_each_step():
    tok = char_tokenizer()
    tagged = rlhflow_prompt(tok, PROBLEM, STEPS)
    plus = tok.encode("+", add_special_tokens=False)[0]
    assert len(tagged.tag_positions) == len(STEPS)
    assert all(tagged.token_ids[p] == plus for p in tagged.tag_positions)
    # The problem itself contains '+': only the assistant turns' '+' are tags, each right after
    # the generation prompt "<|im_start|>assistant\n".
    assert tagged.token_ids.count(plus) == len(STEPS) + 2
    text = tok.decode(tagged.token_ids)
    for p in tagged.tag_positions:
        assert tok.decode(tagged.token_ids[:p]).endswith("<|im_start|>assistant\n")
    assert text == tok.apply_chat_template(rlhflow_conversation(PROBLEM, STEPS), tokenize=False)


def test_rlhflow_prompt_refuses_a_tokenizer_that_merges_the_plus():
    tok = char_tokenizer(extra_tokens=("\n+",))
    with pytest.raises(BackendError, match="merges"):
        rlhflow_prompt(tok, PROBLEM, STEPS)


def _row(token_id: int, logprob: float | None, top: dict[int, float]) -> PositionLogprobs:
    return PositionLogprobs(token_id, logprob, top)


def test_plus_minus_scores_normalise_over_the_two_tokens():
    plus, minus = 7, 8
    rows = [
        _row(1, None, {}),
        _row(plus, math.log(0.6), {plus: math.log(0.6), minus: math.log(0.2), 3: math.log(0.1)}),
        _row(2, math.log(0.5), {2: math.log(0.5)}),
        _row(plus, math.log(0.1), {minus: math.log(0.7), plus: math.log(0.1)}),
    ]
    assert plus_minus_scores(rows, [1, 3], plus, minus) == pytest.approx([0.75, 0.125])


def test_plus_minus_scores_bound_an_absent_minus_by_the_kth_logprob():
    plus, minus = 7, 8
    rows = [_row(1, None, {}), _row(plus, math.log(0.5), {plus: math.log(0.5), 3: math.log(0.3), 4: math.log(0.1)})]
    assert plus_minus_scores(rows, [1], plus, minus) == pytest.approx([0.5 / 0.6])


def test_plus_minus_scores_reject_a_position_without_plus():
    rows = [_row(1, None, {}), _row(5, -1.0, {5: -1.0})]
    with pytest.raises(BackendError, match="position 1"):
        plus_minus_scores(rows, [1], 7, 8)


@dataclass
class LogprobEngine:
    """An engine stand-in that returns chosen prompt logprobs: P(+) = 0.9, 0.5, 0.2, ... per tag."""

    tokenizer: PreTrainedTokenizerFast
    p_plus: tuple[float, ...]
    n_params: int = 123
    calls: int = 0

    def prompt_logprobs(self, prompts, k):
        self.calls += 1
        plus = self.tokenizer.encode("+", add_special_tokens=False)[0]
        minus = self.tokenizer.encode("-", add_special_tokens=False)[0]
        out = []
        for ids in prompts:
            rows, tag = [], 0
            for pos, t in enumerate(ids):
                # a tag is a '+' right after the assistant header's newline
                if t == plus and pos >= 1 and self.tokenizer.decode(ids[:pos]).endswith("assistant\n"):
                    p = self.p_plus[tag]
                    tag += 1
                    rows.append(_row(t, math.log(p), {plus: math.log(p), minus: math.log(1 - p)}))
                else:
                    rows.append(_row(t, None if pos == 0 else -1.0, {}))
            out.append(rows)
        return out


def test_rlhflow_prm_scores_only_new_steps_in_one_call():
    engine = LogprobEngine(char_tokenizer(), (0.9, 0.5, 0.2))
    prm = RlhflowPRM(engine)
    got = prm.score([PROBLEM, PROBLEM, PROBLEM], [STEPS, STEPS, STEPS[:1]], [0, 2, 1])
    assert engine.calls == 1
    assert got[0].scores == pytest.approx((0.9, 0.5, 0.2))
    assert got[1].scores == pytest.approx((0.2,))
    assert got[2].scores == () and got[2].n_tokens == 0  # nothing new to score, nothing read
    assert got[0].n_tokens == got[1].n_tokens == len(rlhflow_prompt(engine.tokenizer, PROBLEM, STEPS).token_ids)
    assert prm.n_params == 123


def test_qwen_prm_messages_tag_every_step():
    msgs = qwen_prm_messages(PROBLEM, STEPS)
    assert msgs[0] == {"role": "system", "content": QWEN_PRM_SYSTEM_PROMPT}
    assert msgs[1] == {"role": "user", "content": PROBLEM}
    assert msgs[2]["content"] == "".join(s + "<extra_0>" for s in STEPS)


def test_qwen_prm_prompt_has_one_tag_token_per_step():
    tok = char_tokenizer()
    ids = qwen_prm_prompt(tok, PROBLEM, STEPS)
    tag = tok.convert_tokens_to_ids(QWEN_STEP_TAG)
    assert ids.count(tag) == len(STEPS)
    assert tok.decode(ids).startswith("<|im_start|>system\nPlease reason step by step")


def test_step_probabilities_softmax_class_one():
    assert step_probabilities([[0.0, 0.0], [0.0, math.log(3.0)], [5.0, -5.0]]) == pytest.approx(
        [0.5, 0.75, 1 / (1 + math.exp(10))]
    )
    with pytest.raises(BackendError, match="2 class logits"):
        step_probabilities([[0.1, 0.2, 0.3]])


@dataclass
class PoolingEngine:
    """A pooling-engine stand-in: logits (0, x) at each step tag, x = log(odds) chosen per tag."""

    tokenizer: PreTrainedTokenizerFast
    odds: tuple[float, ...]
    model: str = "qwen-stand-in"
    n_params: int = 7
    calls: int = 0

    def step_logits(self, token_ids, step_tag_id):
        self.calls += 1
        return [[[0.0, math.log(self.odds[i])] for i in range(ids.count(step_tag_id))] for ids in token_ids]


def test_qwen_prm_scores_from_pooled_logits():
    engine = PoolingEngine(char_tokenizer(), odds=(3.0, 1.0, 0.25))
    prm = QwenMathPRM(engine)
    got = prm.score([PROBLEM, PROBLEM], [STEPS, STEPS[:2]], [1, 0])
    assert engine.calls == 1
    assert got[0].scores == pytest.approx((0.5, 0.2))
    assert got[1].scores == pytest.approx((0.75, 0.5))
    assert got[0].n_tokens == len(qwen_prm_prompt(engine.tokenizer, PROBLEM, STEPS))


def test_qwen_prm_rejects_a_count_mismatch():
    engine = PoolingEngine(char_tokenizer(), odds=(1.0,) * 5)
    with pytest.raises(BackendError, match="3 step scores for 2 steps"):
        QwenMathPRM(engine).score([PROBLEM], [["a <extra_0> b", "c"]], [0])


def test_yes_probability_sums_variants():
    probs = {" Yes": 0.3, "yes": 0.1, "No": 0.1, " no": 0.1, "Maybe": 0.4}
    assert yes_probability({t: math.log(p) for t, p in probs.items()}) == pytest.approx(0.4 / 0.6)
    assert yes_probability({"Maybe": -0.1, "The": -2.0}) == 0.5
    assert yes_probability({"Yes": -0.2}) == 1.0


def test_finish_reasons_map_stop_string_eos_and_length():
    assert finish_reason("stop", "\n\n") == "step"
    assert finish_reason("stop", None) == "eos"
    assert finish_reason("stop", 2) == "eos"  # a stop token id ends the sequence
    assert finish_reason("length", None) == "length"
    with pytest.raises(BackendError, match="abort"):
        finish_reason("abort", None)


def test_logsumexp_merges_duplicate_token_texts():
    assert logsumexp([math.log(0.2), math.log(0.3)]) == pytest.approx(math.log(0.5))
    assert logsumexp([-math.inf, -math.inf]) == -math.inf


def test_verifier_registry_names_the_llm_verifiers():
    with pytest.raises(Exception) as err:
        load_verifier("rlhf_prm", None, None)
    assert "did you mean 'rlhflow_prm'" in str(err.value)
    assert "qwen_prm" in str(err.value) and "self" in str(err.value)
