"""`arith_chain`: checks the whole chain of an arithmetic solution, not one step at a time.

The `arithmetic` verifier scores a step by the claims in it, so the step that states the answer
("so the answer is 12") — the one `last` aggregation ranks by — has nothing to check and every
candidate gets the same neutral score. This verifier carries the chain forward. Step i's score:

    base  = claims so far that hold AND are grounded / distinct claims so far   (0.5 before any)
    on a step that states an answer (`\\boxed{..}` or "the answer is .."):
    score = base · (0.25 + 0.75 · [answer equals the last claim's result]) · coverage

- grounded: every operand is a number of the problem not used yet (each given number once) or
  the result of an earlier claim — a true claim about made-up numbers earns nothing;
- coverage: the share of the problem's numbers the claims used (an answer that ignored half
  the problem is doubtful).

It depends only on the problem and steps[:i+1] (causal, as `Verifier` requires), so it works
under beam search, DVTS and the prefix cache. Measured on the bundled SmolLM2-135M, it separates
right from wrong candidates far better than `arithmetic` (AUC in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ttscale.verifiers import VERIFIERS
from ttscale.verifiers.arithmetic import NUMBER, claims, number
from ttscale.verifiers.base import StepScores

NEUTRAL = 0.5
_BOXED = re.compile(r"\\boxed\{")
_ANSWER_PHRASE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*\$*\s*([^\n$]+?)\s*\$*\s*(?:\.\s|\.?$|\n|,\s|I hope)",
    re.IGNORECASE,
)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    depth = 1
    for j in range(starts[-1], len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[starts[-1] : j].strip()
    return None


def stated_answer(step: str) -> str | None:
    """The answer a step states (the last `\\boxed{}`, else "the answer is X"); None if none."""
    boxed = _last_boxed(step)
    if boxed:
        return boxed
    found = [f.strip() for f in _ANSWER_PHRASE.findall(step)]
    return found[-1] if found and found[-1] else None


def answer_value(answer: str) -> float | None:
    """The number an answer states: the whole text (`1,250`), the last number after `=`
    (`2+3 = 5`), or the one number of a text without operators (`38 apples`, `\\text{38}`)."""
    text = answer.replace("$", "").replace(",", "").strip().rstrip(".")
    try:
        return float(text)
    except ValueError:
        pass
    if "=" in text:
        after = NUMBER.findall(text.rsplit("=", 1)[1])
        if len(after) == 1:
            return number(after[0])
    found = NUMBER.findall(text)
    if len(found) == 1 and not re.search(r"[+\-*/^]|\\frac", text) and not re.search(r"\d", text.replace(found[0], "", 1)):
        return number(found[0])
    return None


class _Chain:
    """The running state of one solution's chain: claims seen, numbers used, results so far."""

    def __init__(self, problem: str) -> None:
        self.given = [number(x) for x in NUMBER.findall(problem)]
        self.unused = list(range(len(self.given)))
        self.results: list[float] = []
        self.seen: set[tuple] = set()
        self.n_claims = self.n_good = 0

    def _grounded(self, operands: Sequence[float]) -> bool:
        ok = True
        for x in operands:
            j = next((j for j in self.unused if _close(self.given[j], x)), None)
            if j is not None:
                self.unused.remove(j)
            elif not any(_close(x, r) for r in self.results):
                ok = False
        return ok

    def step_score(self, step: str) -> float:
        for claim in claims(step):
            key = (claim.operands, claim.result)
            if key in self.seen:  # a claim repeated verbatim counts once
                continue
            self.seen.add(key)
            self.n_claims += 1
            self.n_good += self._grounded(claim.operands) and claim.holds
            self.results.append(claim.result)
        score = self.n_good / self.n_claims if self.n_claims else NEUTRAL
        answer = stated_answer(step)
        if answer is not None:
            value = answer_value(answer)
            matches = value is not None and bool(self.results) and _close(value, self.results[-1])
            coverage = 1 - len(self.unused) / len(self.given) if self.given else 1.0
            score *= (0.25 + 0.75 * matches) * coverage
        return score


def chain_scores(problem: str, steps: Sequence[str]) -> list[float]:
    """One score in [0, 1] per step; step i's depends only on `problem` and steps[:i+1]."""
    chain = _Chain(problem)
    return [chain.step_score(step) for step in steps]


class ArithChainVerifier:
    name = "arith_chain"
    n_params = 0

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        return [
            StepScores(tuple(chain_scores(problem, steps)[first:]), 0)
            for problem, steps, first in zip(problems, solutions, start, strict=True)
        ]


@VERIFIERS.register("arith_chain", "Checks an arithmetic solution's whole chain: claims hold, use the problem's numbers, lead to the answer (no model)")
def make_arith_chain(policy, settings) -> ArithChainVerifier:  # noqa: ANN001 (registry signature)
    return ArithChainVerifier()
