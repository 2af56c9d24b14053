"""How a shard's problems meet the engine: one batched search, or each problem on its own.

- `barrier` (the default): the strategy runs once over all problems of the shard; each of its
  iterations is one `generate` for every live path of every problem, so the next iteration starts
  when the slowest sequence of the whole shard is done.
- `per_problem`: the same strategy runs on each problem in its own thread, over a policy whose
  engine batches concurrent calls itself (`Policy.batches_concurrent_calls`: the vLLM backend with
  `engine="async"`). A problem starts its next step as soon as its own step is done; the engine
  keeps the steps of all problems in one running batch. Verifier calls stay batched across
  problems: calls that arrive while a batch is being scored go together in the next one
  (`CoalescingVerifier`).

Which is faster was measured (docs/performance.md, "The iteration barrier"): the choice is the
caller's (`runner.search_shard(..., scheduling=...)`), the strategies are the same either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

from ttscale.strategies import run_strategy
from ttscale.strategies.common import SearchContext
from ttscale.tree import Problem, ProblemResult
from ttscale.verifiers.base import StepScores, Verifier

Scheduling = Literal["barrier", "per_problem"]
SCHEDULINGS: tuple[Scheduling, ...] = ("barrier", "per_problem")


@dataclass
class _Call:
    problems: Sequence[str]
    solutions: Sequence[Sequence[str]]
    start: Sequence[int]
    result: list[StepScores] | None = None
    error: BaseException | None = None


class CoalescingVerifier:
    """A verifier shared by the problems' threads: the first caller scores its own call; calls that
    arrive meanwhile wait and are scored together in one batch by the next free caller. No timer
    and no barrier: a call never waits for a problem that is still generating."""

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        self.name = inner.name
        self.n_params = inner.n_params
        self._cond = threading.Condition()
        self._pending: list[_Call] = []
        self._busy = False
        self.n_batches = 0
        """Batches sent to the inner verifier (fewer than calls when calls coalesced)."""

    def score(self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]) -> list[StepScores]:
        call = _Call(problems, solutions, start)
        with self._cond:
            self._pending.append(call)
            while call.result is None and call.error is None and self._busy:
                self._cond.wait()
            if call.result is None and call.error is None:
                batch, self._pending, self._busy = self._pending, [], True
            else:
                batch = []
        if batch:
            self._score(batch)
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _score(self, batch: list[_Call]) -> None:
        try:
            got = self.inner.score([p for c in batch for p in c.problems], [s for c in batch for s in c.solutions],
                                   [f for c in batch for f in c.start])
            i = 0
            for c in batch:
                c.result, i = list(got[i : i + len(c.solutions)]), i + len(c.solutions)
        except BaseException as err:  # noqa: BLE001 - handed to every caller of the batch, re-raised there
            for c in batch:
                c.error = err
        finally:
            with self._cond:
                self.n_batches += 1
                self._busy = False
                self._cond.notify_all()


def search_per_problem(problems: Sequence[Problem], n: int, params: Any, ctx: SearchContext,
                       run: Callable[..., list[ProblemResult]] = run_strategy) -> list[ProblemResult]:
    """`run` (the strategy) on each problem in its own thread, each with its own context (and score
    cache) over one `CoalescingVerifier`; results in problem order. The policy must batch
    concurrent calls (`batches_concurrent_calls`), else the problems would run one at a time."""
    verifier = CoalescingVerifier(ctx.verifier) if ctx.verifier is not None else None
    contexts = [replace(ctx, verifier=verifier) for _ in problems]
    if not problems:
        return []
    with ThreadPoolExecutor(max_workers=len(problems), thread_name_prefix="ttscale-problem") as pool:
        futures = [pool.submit(run, [p], n, params, c) for p, c in zip(problems, contexts, strict=True)]
        return [f.result()[0] for f in futures]
