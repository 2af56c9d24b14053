"""The verifier protocol: one score in [0, 1] per reasoning step, steps split on blank lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

STEP_SEPARATOR = "\n\n"


def split_steps(text: str, *, raw: bool = False) -> list[str]:
    """Reasoning steps of a solution: chunks between blank lines, stripped, empty chunks dropped;
    with `raw`, the text split on blank lines as it is (the reference's `text.split("\\n\\n")`:
    a text ending in a blank line ends with an empty step; see docs/fidelity.md).

    Each step's score is the verifier's judgement of that step given the problem and every step
    before it.
    """
    if raw:
        return text.split(STEP_SEPARATOR)
    return [s for s in (part.strip() for part in text.split(STEP_SEPARATOR)) if s]


@dataclass(frozen=True, slots=True)
class StepScores:
    """Scores for steps `start..` of one solution, and the tokens the verifier read for them."""

    scores: tuple[float, ...]
    n_tokens: int


@runtime_checkable
class Verifier(Protocol):
    """Scores reasoning steps. Every implementation is causal: step i's score depends only on
    the problem and steps[:i+1], which is what lets `CachingVerifier` skip scored prefixes."""

    name: str
    n_params: int
    """Parameters of the scoring model (0 for programmatic checkers), for FLOPs accounting."""

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        """Scores of steps `solutions[i][start[i]:]` for every i, in one batched call."""
        ...
