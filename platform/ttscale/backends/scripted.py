"""A scripted policy whose outputs the test chooses: the only fake in the test suite.

`respond(prompt, k)` gives the full continuation for the k-th sample of a prompt (k counts
samples of that prompt across calls; greedy decoding always asks for k=0, so it repeats).
Stop strings cut the continuation as an engine would, keeping the stop string; a token is a
whitespace-separated word, which is all the accounting tests need.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence

from ttscale.backends.base import Completion, GenerationRequest

_TOKEN = re.compile(r"\s*\S+")


def _n_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


class ScriptedPolicy:
    def __init__(
        self,
        respond: Callable[[str, int], str],
        *,
        model: str = "scripted",
        n_params: int = 1_000_000,
        next_token: Callable[[str], dict[str, float]] | None = None,
    ) -> None:
        self.respond = respond
        self.model = model
        self.n_params = n_params
        self._next_token = next_token
        self._drawn: Counter[str] = Counter()
        self.calls: list[tuple[int, int]] = []
        """(number of prompts, n) of every generate call, for batching assertions."""

    def generate(self, request: GenerationRequest) -> list[list[Completion]]:
        self.calls.append((len(request.prompts), request.n))
        greedy = request.temperature == 0
        out = []
        for prompt in request.prompts:
            row = []
            for _ in range(request.n):
                k = 0 if greedy else self._drawn[prompt]
                self._drawn[prompt] += not greedy
                row.append(self._complete(prompt, self.respond(prompt, k), request.stop, request.max_tokens))
            out.append(row)
        return out

    def _complete(self, prompt: str, full: str, stop: Sequence[str] | None, max_tokens: int) -> Completion:
        finish, text = "eos", full
        ends = [full.find(s) + len(s) for s in stop or () if s in full]
        if ends:
            finish, text = "step", full[: min(ends)]
        tokens = _TOKEN.findall(text)
        if len(tokens) > max_tokens:
            finish, text = "length", "".join(tokens[:max_tokens])
        return Completion(text, _n_tokens(prompt), _n_tokens(text), finish)

    def next_token_logprobs(self, prompts: Sequence[str], k: int) -> list[dict[str, float]]:
        if self._next_token is None:
            return [{(self.respond(p, 0).split() or [""])[0]: 0.0} for p in prompts]
        return [dict(sorted(self._next_token(p).items(), key=lambda kv: -kv[1])[:k]) for p in prompts]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [_n_tokens(t) for t in texts]

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"



def _stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def default_respond(prompt: str, k: int) -> str:
    """A deterministic two-step solution whose answer depends on (prompt, k): answers 0-9.

    Used by the registered `scripted` model so that orchestration, store and dashboard tests
    can run a whole sweep in seconds without an engine; accuracy is meaningless there.
    """
    h = _stable_int(prompt, k)
    a, b = h % 7, (h // 7) % 3
    return f"## Step 1: Add\n{a} + {b} = {a + b}\n\nTherefore, the final answer is: $\\boxed{{{a + b}}}$."
