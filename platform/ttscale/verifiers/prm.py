"""Process reward models (PRMs) through vLLM: one score in [0, 1] per `\\n\\n` step.

`rlhflow_prm` — RLHFlow/Llama3.1-8B-PRM-Deepseek-Data, the reference PRM (search-and-learn
`sal/models/reward_models.py`, class `RLHFFlow`). The solution becomes a conversation: the first
user turn is the problem, a space and the first step, each later user turn the next step, and
every assistant turn is `+`. A step's score is P(+) / (P(+) + P(-)) at the position of the
assistant's `+` after it. Here one forward pass (vLLM `prompt_logprobs`) over the whole
conversation scores every step, where the reference runs one pass per step prefix.

`qwen_prm` — Qwen/Qwen2.5-Math-PRM-7B through vLLM's pooling runner. The steps are joined with
`<extra_0>` (one after each step) as the assistant's answer under the Qwen-Math system prompt;
the model's 2-class head is read at every `<extra_0>`, and a step's score is
softmax(logits)[1] there (the model card's `make_step_rewards`).

Prompt building and score extraction are pure functions, unit-tested on any tokenizer and on
synthetic model outputs; the classes only call the engine. Both models need a GPU for real use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ttscale.backends.base import Policy
from ttscale.backends.vllm_engine import get_policy, get_reward_model
from ttscale.errors import BackendError
from ttscale.settings import Settings
from ttscale.verifiers import VERIFIERS
from ttscale.verifiers.base import StepScores

RLHFLOW_MODEL = "rlhflow-prm-8b"
QWEN_PRM_MODEL = "qwen2.5-math-prm-7b"
QWEN_PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_STEP_TAG = "<extra_0>"
PRM_TOP_K = 20
"""Alternatives read at each `+` position: a real PRM puts `+` and `-` at the top two."""


# --- RLHFlow: prompt building and extraction (pure) -------------------------------------------------


def rlhflow_conversation(problem: str, steps: Sequence[str]) -> list[dict[str, str]]:
    """The reference's conversation: user (problem + first step), assistant `+`, user (next step), ..."""
    messages = []
    for k, step in enumerate(steps):
        messages.append({"role": "user", "content": f"{problem} {step}" if k == 0 else step})
        messages.append({"role": "assistant", "content": "+"})
    return messages


@dataclass(frozen=True)
class TaggedPrompt:
    """A rendered prompt as token ids, and the index of each step's tag token in it."""

    token_ids: list[int]
    tag_positions: list[int]


def rlhflow_prompt(tokenizer: Any, problem: str, steps: Sequence[str]) -> TaggedPrompt:
    """Render the conversation with the tokenizer's chat template and find every assistant `+`.

    The character offset of each `+` is where the conversation rendered up to that step's
    generation prompt ends; the token starting at that offset is the `+` the PRM predicts.
    Needs a fast tokenizer (offset mapping).
    """
    messages = rlhflow_conversation(problem, steps)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    starts = []
    for k in range(len(steps)):
        head = tokenizer.apply_chat_template(messages[: 2 * k + 1], tokenize=False, add_generation_prompt=True)
        if not text.startswith(head) or text[len(head) : len(head) + 1] != "+":
            raise BackendError("rlhflow_prm: the chat template does not render an assistant '+' after each step")
        starts.append(len(head))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    by_start = {}
    for i, (a, b) in enumerate(offsets):
        if b > a:
            by_start.setdefault(a, i)
    positions = []
    for s in starts:
        if s not in by_start:
            raise BackendError("rlhflow_prm: the tokenizer merges the assistant '+' with the text before it")
        positions.append(by_start[s])
    return TaggedPrompt(ids, positions)


def plus_minus_scores(
    rows: Sequence[Any], positions: Sequence[int], plus_id: int, minus_id: int
) -> list[float]:
    """P(+) / (P(+) + P(-)) at each position, from per-position prompt logprobs.

    `rows[i]` has `token_id`, `logprob` (of the token at i) and `top` (token id → logprob of the
    k most likely tokens at i), as `VllmPolicy.prompt_logprobs` returns. The token at each
    position must be `+`. When `-` is not among the top k its probability is below the k-th,
    and the k-th is used: the score is then a lower bound (a real PRM ranks `-` second anyway).
    """
    scores = []
    for pos in positions:
        row = rows[pos]
        if row.token_id != plus_id or row.logprob is None:
            raise BackendError(f"rlhflow_prm: expected the '+' token at position {pos}, found token {row.token_id}")
        lp_plus = row.logprob
        lp_minus = row.top.get(minus_id)
        if lp_minus is None:
            lp_minus = min(row.top.values()) if row.top else -math.inf
        top = max(lp_plus, lp_minus)
        p_plus, p_minus = math.exp(lp_plus - top), math.exp(lp_minus - top)
        scores.append(p_plus / (p_plus + p_minus))
    return scores


class RlhflowPRM:
    """The reference PRM on any engine with `prompt_logprobs` and a fast tokenizer (a `VllmPolicy`)."""

    name = "rlhflow_prm"

    def __init__(self, engine: Any, top_k: int = PRM_TOP_K) -> None:
        self.engine = engine
        self.n_params = engine.n_params
        self.top_k = top_k
        tok = engine.tokenizer
        self.plus_id = tok.encode("+", add_special_tokens=False)[-1]
        self.minus_id = tok.encode("-", add_special_tokens=False)[-1]

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        todo = [i for i, steps in enumerate(solutions) if len(steps) > start[i]]
        prompts = {i: rlhflow_prompt(self.engine.tokenizer, problems[i], solutions[i]) for i in todo}
        rows = self.engine.prompt_logprobs([prompts[i].token_ids for i in todo], self.top_k) if todo else []
        got = dict(zip(todo, rows, strict=True))
        out = []
        for i in range(len(solutions)):
            if i not in got:
                out.append(StepScores((), 0))
                continue
            scores = plus_minus_scores(got[i], prompts[i].tag_positions, self.plus_id, self.minus_id)
            out.append(StepScores(tuple(scores[start[i] :]), len(prompts[i].token_ids)))
        return out


# --- Qwen2.5-Math-PRM: prompt building and extraction (pure) ----------------------------------------


def qwen_prm_messages(problem: str, steps: Sequence[str]) -> list[dict[str, str]]:
    """The model card's input: system, the problem, and the steps each followed by `<extra_0>`."""
    return [
        {"role": "system", "content": QWEN_PRM_SYSTEM_PROMPT},
        {"role": "user", "content": problem},
        {"role": "assistant", "content": "".join(step + QWEN_STEP_TAG for step in steps)},
    ]


def qwen_prm_prompt(tokenizer: Any, problem: str, steps: Sequence[str]) -> list[int]:
    text = tokenizer.apply_chat_template(qwen_prm_messages(problem, steps), tokenize=False, add_generation_prompt=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def step_probabilities(logits: Sequence[Sequence[float]]) -> list[float]:
    """softmax(logits)[1] for each step tag's 2-class logits (index 1 = the step is correct)."""
    out = []
    for row in logits:
        if len(row) != 2:
            raise BackendError(f"qwen_prm: expected 2 class logits per step, got {len(row)}")
        neg, pos = float(row[0]), float(row[1])
        out.append(1.0 / (1.0 + math.exp(neg - pos)))
    return out


class QwenMathPRM:
    """Qwen2.5-Math-PRM on a `VllmRewardModel` (vLLM pooling runner, step-tag pooling)."""

    name = "qwen_prm"

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.n_params = engine.n_params
        tag_ids = engine.tokenizer.encode(QWEN_STEP_TAG, add_special_tokens=False)
        if len(tag_ids) != 1:
            raise BackendError(f"qwen_prm: {QWEN_STEP_TAG} is not one token of model {engine.model!r}")
        self.tag_id = tag_ids[0]

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        todo = [i for i, steps in enumerate(solutions) if len(steps) > start[i]]
        ids = {i: qwen_prm_prompt(self.engine.tokenizer, problems[i], solutions[i]) for i in todo}
        pooled = self.engine.step_logits([ids[i] for i in todo], self.tag_id) if todo else []
        got = dict(zip(todo, pooled, strict=True))
        out = []
        for i, steps in enumerate(solutions):
            if i not in got:
                out.append(StepScores((), 0))
                continue
            if len(got[i]) != len(steps):
                raise BackendError(
                    f"qwen_prm: {len(got[i])} step scores for {len(steps)} steps (a step contains {QWEN_STEP_TAG}?)"
                )
            out.append(StepScores(tuple(step_probabilities(got[i])[start[i] :]), len(ids[i])))
        return out


# --- registration ------------------------------------------------------------------------------------


@VERIFIERS.register("rlhflow_prm", "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data, the reference PRM (GPU)")
def make_rlhflow_prm(policy: Policy, settings: Settings) -> RlhflowPRM:
    del policy
    return RlhflowPRM(get_policy(RLHFLOW_MODEL, settings, role="prm", max_logprobs=PRM_TOP_K))


@VERIFIERS.register("qwen_prm", "Qwen/Qwen2.5-Math-PRM-7B, step classifier at <extra_0> tags (GPU)")
def make_qwen_prm(policy: Policy, settings: Settings) -> QwenMathPRM:
    del policy
    return QwenMathPRM(get_reward_model(QWEN_PRM_MODEL, settings))
