"""Scripted solvers shared by unit tests: deterministic step-wise solutions."""

from __future__ import annotations

from ttscale.backends.scripted import ScriptedPolicy
from ttscale.prompting import PromptBuilder
from ttscale.spec import SamplingParams
from ttscale.strategies.common import SearchContext
from ttscale.tree import Problem
from ttscale.verifiers.scripted import ScriptedVerifier

ASSISTANT = "<assistant>\n"


def stepwise(prompt: str, k: int) -> str:
    """Three steps then a boxed answer; the answer depends on the sample index k and the
    step count, so different branches reach different answers (1 + k mod 3)."""
    prefix = prompt.rsplit(ASSISTANT, 1)[-1]
    done = prefix.count("\n\n")
    if prompt.count(ASSISTANT) > 1 and "Check your solution" in prompt:
        return f"Revised: 2 + 2 = 4\n\nThe answer is \\boxed{{{k % 2 + 3}}}"
    rest = [f"step {i} sample {k}: {i} + {k} = {i + k}\n\n" for i in range(done, 3)]
    return "".join(rest) + f"Therefore, the final answer is: $\\boxed{{{(k + done) % 3 + 1}}}$."


def problems(count: int) -> list[Problem]:
    return [Problem("toy", f"p{i}", f"Problem {i}: what is 1 + {i % 3}?", str(1 + i % 3), level=1) for i in range(count)]


def context(temperature: float = 0.8, verifier: bool = True, aggregation: str = "last") -> SearchContext:
    policy = ScriptedPolicy(stepwise)
    return SearchContext(
        policy=policy,
        prompts=PromptBuilder(chat=policy.chat_prompt, format="chat"),
        sampling=SamplingParams(temperature=temperature, max_tokens=200, step_max_tokens=50),
        verifier=ScriptedVerifier() if verifier else None,
        aggregation=aggregation,
    )
