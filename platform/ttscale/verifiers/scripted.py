"""A scripted verifier whose scores the test chooses (the only fake besides ScriptedPolicy)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ttscale.verifiers import VERIFIERS
from ttscale.verifiers.base import StepScores


def hashed_score(problem: str, steps: Sequence[str]) -> float:
    """A deterministic pseudo-random score in [0, 1] for the last of `steps`."""
    digest = hashlib.sha256(("\x1f".join([problem, *steps])).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 0xFFFFFFFF


class ScriptedVerifier:
    name = "scripted"
    n_params = 1_000_000

    def __init__(self, score_step: Callable[[str, Sequence[str]], float] = hashed_score) -> None:
        self.score_step = score_step
        self.calls: list[int] = []
        """Number of steps scored in each call, for caching/batching assertions."""

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        out = []
        for problem, steps, first in zip(problems, solutions, start, strict=True):
            out.append(StepScores(tuple(self.score_step(problem, steps[: j + 1]) for j in range(first, len(steps))), 0))
        self.calls.append(sum(len(s) - f for s, f in zip(solutions, start, strict=True)))
        return out


@VERIFIERS.register("scripted", "Deterministic hashed step scores (tests and dry runs; no model)")
def make_scripted(policy, settings) -> ScriptedVerifier:
    return ScriptedVerifier()
