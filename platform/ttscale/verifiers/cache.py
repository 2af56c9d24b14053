"""Score each step prefix once: search re-scores the same prefixes at every iteration.

Beam search and DVTS extend a shared path by one step per iteration and ask the verifier
about the whole solution again. Verifiers are causal (step i's score depends only on the
problem and steps[:i+1]), so scores of prefixes seen before are reused and the inner verifier
is asked only about the new steps — it reads fewer tokens, and the self-verifier makes
fewer calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.verifiers.base import StepScores, Verifier


class CachingVerifier:
    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        self.name = inner.name
        self.n_params = inner.n_params
        self._scores: dict[tuple[str, tuple[str, ...]], float] = {}
        self.n_cached_steps = 0

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int] | None = None
    ) -> list[StepScores]:
        """Scores of steps `start[i]:` of each solution (all steps when `start` is None)."""
        starts = list(start) if start is not None else [0] * len(solutions)
        todo: list[int] = []
        todo_start: list[int] = []
        for i, (problem, steps) in enumerate(zip(problems, solutions, strict=True)):
            known = starts[i]
            while known < len(steps) and (problem, tuple(steps[: known + 1])) in self._scores:
                known += 1
            if known < len(steps):
                todo.append(i)
                todo_start.append(known)
        fresh = (
            self.inner.score([problems[i] for i in todo], [solutions[i] for i in todo], todo_start) if todo else []
        )
        tokens = dict.fromkeys(range(len(solutions)), 0)
        n_requested = sum(len(steps) - first for steps, first in zip(solutions, starts, strict=True))
        n_fresh = 0
        for i, first, got in zip(todo, todo_start, fresh, strict=True):
            steps = solutions[i]
            if len(got.scores) != len(steps) - first:
                raise AssertionError(
                    f"verifier {self.name} returned {len(got.scores)} scores for {len(steps) - first} steps"
                )
            for j, s in enumerate(got.scores, start=first):
                self._scores[(problems[i], tuple(steps[: j + 1]))] = float(s)
            tokens[i] = got.n_tokens
            n_fresh += len(got.scores)
        self.n_cached_steps += n_requested - n_fresh
        out = []
        for i, (problem, steps) in enumerate(zip(problems, solutions, strict=True)):
            scores = tuple(self._scores[(problem, tuple(steps[: j + 1]))] for j in range(starts[i], len(steps)))
            out.append(StepScores(scores, tokens[i]))
        return out
