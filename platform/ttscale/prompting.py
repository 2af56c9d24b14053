"""Prompts for solving and revising, rendered through the policy's chat template.

Two formats, chosen per model in the model registry:
- `chat`: the reference's system prompt and the problem (search-and-learn uses this with
  Llama-3.2-Instruct).
- `few_shot_chat`: the same, preceded by worked examples as earlier turns. Tiny instruct
  models (SmolLM2-135M) never write `\\boxed{}` from instructions alone but copy the format of
  examples, and the chat template still ends every answer with EOS.
The prompt texts are package data (ttscale/prompts/*.txt), not literals in code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

PromptFormat = str  # "chat" | "few_shot_chat"

_EXAMPLE_SPLIT = re.compile(r"^=== (problem|solution) ===\n", re.MULTILINE)


@cache
def _text(name: str) -> str:
    return resources.files("ttscale.prompts").joinpath(name).read_text(encoding="utf-8")


@cache
def few_shot_examples() -> tuple[tuple[str, str], ...]:
    """(problem, solution) pairs from prompts/few_shot_examples.txt."""
    parts = _EXAMPLE_SPLIT.split(_text("few_shot_examples.txt"))[1:]
    pairs, problem = [], None
    for kind, body in zip(parts[::2], parts[1::2], strict=True):
        if kind == "problem":
            problem = body.strip()
        else:
            pairs.append((problem, body.strip()))
    return tuple(pairs)


@dataclass(frozen=True)
class PromptBuilder:
    """Turns problems (and previous answers) into prompts ending where the solution starts."""

    chat: Callable[[Sequence[dict[str, str]]], str]
    """The policy's chat template: messages → prompt text ready for the assistant's turn."""
    format: PromptFormat = "chat"
    system: str | None = None
    """The model's own system prompt (Qwen-Math models are trained with one); else ttscale's."""

    def _prefix(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": (self.system or _text("system.txt")).strip()}]
        if self.format == "few_shot_chat":
            for problem, solution in few_shot_examples():
                messages += [{"role": "user", "content": problem}, {"role": "assistant", "content": solution}]
        return messages

    def solve(self, problem: str) -> str:
        return self.chat([*self._prefix(), {"role": "user", "content": problem}])

    def revise(self, problem: str, previous: str) -> str:
        return self.chat(
            [
                *self._prefix(),
                {"role": "user", "content": problem},
                {"role": "assistant", "content": previous.strip()},
                {"role": "user", "content": _text("revise.txt").strip()},
            ]
        )

    def self_verify(self, problem: str, steps: Sequence[str]) -> str:
        """Ask whether the last of `steps` is correct; the answer starts with Yes or No."""
        previous = "\n\n".join(steps[:-1]) or "(none)"
        question = _text("self_verify.txt").format(problem=problem, previous=previous, step=steps[-1])
        return self.chat([{"role": "user", "content": question.strip()}])
