"""The `self` verifier: the policy model judges its own steps.

For every step to score, the policy is shown the problem, the steps before it and the step
(prompt `prompts/self_verify.txt` in the model's chat template) and asked whether the step is
correct. The score is P(Yes) / (P(Yes) + P(No)) over its next token, each side summing the
variants `Yes`, ` Yes`, `yes`, ... found among the top-k; 0.5 when neither appears.
One prompt per new step, all steps of all solutions in one batched `next_token_logprobs` call.
The verifier's FLOPs are the policy's (`n_params`), over every prompt token it reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

from ttscale.backends.base import Policy
from ttscale.prompting import PromptBuilder
from ttscale.settings import Settings
from ttscale.verifiers import VERIFIERS
from ttscale.verifiers.base import StepScores

TOP_K = 20
"""Next tokens read per prompt (vLLM's default `max_logprobs`)."""


def yes_probability(top: Mapping[str, float]) -> float:
    """P(Yes) / (P(Yes) + P(No)) from next-token logprobs (decoded text → logprob); 0.5 when
    neither a yes nor a no token is among them. Variants differ in case and leading space."""
    yes = sum(math.exp(lp) for text, lp in top.items() if text.strip().lower() == "yes")
    no = sum(math.exp(lp) for text, lp in top.items() if text.strip().lower() == "no")
    if yes + no == 0.0:
        return 0.5
    return yes / (yes + no)


@dataclass
class SelfVerifier:
    """The policy judging its own steps (a `Verifier`); its FLOPs are the policy's."""

    policy: Policy
    top_k: int = TOP_K
    name = "self"

    @property
    def n_params(self) -> int:
        return self.policy.n_params

    def prompts(self, problem: str, steps: Sequence[str], start: int) -> list[str]:
        """One question per step `start..`: is step j correct given the problem and steps[:j]?"""
        builder = PromptBuilder(self.policy.chat_prompt)
        return [builder.self_verify(problem, steps[: j + 1]) for j in range(start, len(steps))]

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        per_solution = [self.prompts(p, steps, s) for p, steps, s in zip(problems, solutions, start, strict=True)]
        flat = [q for qs in per_solution for q in qs]
        tops = self.policy.next_token_logprobs(flat, self.top_k) if flat else []
        n_tokens = self.policy.count_tokens(flat) if flat else []
        out, i = [], 0
        for qs in per_solution:
            j = i + len(qs)
            out.append(StepScores(tuple(yes_probability(t) for t in tops[i:j]), sum(n_tokens[i:j])))
            i = j
        return out


@VERIFIERS.register("self", "The policy model judges each step itself: P(Yes) over its next token")
def make_self_verifier(policy: Policy, settings: Settings) -> SelfVerifier:
    del settings
    return SelfVerifier(policy)
