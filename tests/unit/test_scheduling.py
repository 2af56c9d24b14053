"""Per-problem scheduling (`ttscale.scheduling`): the same strategies, each problem on its own
thread, grow exactly the trees the batched search grows; verifier calls from the problems'
threads are coalesced into batches and never lost."""

from __future__ import annotations

import threading

import pytest

from tests.scripted import context, problems
from tests.unit.test_runner import cell, runtime
from ttscale.runner import search_shard
from ttscale.scheduling import CoalescingVerifier
from ttscale.verifiers.base import StepScores

CELLS = [
    ({"name": "beam_search", "beam_width": 2, "n_iterations": 4}, 4),
    ({"name": "dvts", "beam_width": 2, "n_iterations": 4}, 4),
    ({"name": "best_of_n"}, 4),
]


def tree(result):
    return [(n.parent, n.depth, n.text, n.pruned, n.scores) for n in result.nodes]


@pytest.mark.parametrize("strategy,n", CELLS, ids=[s["name"] for s, _ in CELLS])
def test_per_problem_grows_the_trees_of_the_batched_search(strategy, n):
    c = cell(strategy, n)
    probs = problems(5)
    barrier_ctx, per_problem_ctx = context(), context()
    barrier = search_shard(c, probs, runtime(c, barrier_ctx), scheduling="barrier")
    per_problem = search_shard(c, probs, runtime(c, per_problem_ctx), scheduling="per_problem")
    assert [r.problem_id for r in per_problem.results] == [p.id for p in probs]
    assert [tree(r) for r in per_problem.results] == [tree(r) for r in barrier.results]
    assert [[(x.text, x.score, x.correct) for x in r.candidates] for r in per_problem.results] == \
        [[(x.text, x.score, x.correct) for x in r.candidates] for r in barrier.results]
    assert per_problem.verdicts == barrier.verdicts
    # The batched search makes one generate per iteration for all problems; per problem, one per problem.
    assert len(per_problem_ctx.policy.calls) == len(probs) * len(barrier_ctx.policy.calls)


def test_per_problem_is_chosen_where_the_policy_batches_concurrent_calls():
    c = cell(*CELLS[0])
    ctx = context()
    ctx.policy.batches_concurrent_calls = True
    search_shard(c, problems(3), runtime(c, ctx))
    plain = context()
    search_shard(c, problems(3), runtime(c, plain))
    assert plain.policy.calls[0][0] == 3  # batched: the three problems' roots in one call
    assert ctx.policy.calls[0][0] == 1 and len(ctx.policy.calls) == 3 * len(plain.policy.calls)  # one problem per call


class GatedVerifier:
    """Scores each step 0.5; its first call waits until the test opens the gate."""

    name = "gated"
    n_params = 0

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.fail = fail

    def score(self, problems, solutions, start):
        self.batches.append(len(solutions))
        if len(self.batches) == 1:
            self.entered.set()
            self.gate.wait(timeout=10)
        if self.fail:
            raise RuntimeError("verifier down")
        return [StepScores(tuple(0.5 for _ in s[f:]), len(s) - f) for s, f in zip(solutions, start, strict=True)]


def call_in_threads(verifier, calls):
    results, errors = [None] * len(calls), [None] * len(calls)

    def one(i):
        try:
            results[i] = verifier.score(*calls[i])
        except Exception as err:  # noqa: BLE001 - collected for the assertion
            errors[i] = err

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    return threads, results, errors


def test_calls_that_arrive_during_a_batch_go_together_in_the_next():
    inner = GatedVerifier()
    verifier = CoalescingVerifier(inner)
    calls = [(["p0"], [["a"]], [0]), (["p1"], [["b", "c"]], [0]), (["p2"], [["d"], ["e", "f", "g"]], [0, 1])]
    threads, results, errors = call_in_threads(verifier, calls)
    threads[0].start()
    assert inner.entered.wait(timeout=10)
    threads[1].start()
    threads[2].start()
    while len(verifier._pending) < 2:  # both queued behind the first batch
        threading.Event().wait(0.01)
    inner.gate.set()
    for t in threads:
        t.join(timeout=10)
    assert errors == [None, None, None]
    assert inner.batches == [1, 3]  # the first call alone, then the two waiting calls' 3 solutions at once
    assert verifier.n_batches == 2
    assert [[s.scores for s in r] for r in results] == [[(0.5,)], [(0.5, 0.5)], [(0.5,), (0.5, 0.5)]]


def test_a_failed_batch_fails_every_call_in_it():
    inner = GatedVerifier(fail=True)
    verifier = CoalescingVerifier(inner)
    calls = [(["p0"], [["a"]], [0]), (["p1"], [["b"]], [0])]
    threads, _, errors = call_in_threads(verifier, calls)
    threads[0].start()
    assert inner.entered.wait(timeout=10)
    threads[1].start()
    while len(verifier._pending) < 1:
        threading.Event().wait(0.01)
    inner.gate.set()
    for t in threads:
        t.join(timeout=10)
    assert [str(e) for e in errors] == ["verifier down", "verifier down"]
    # and the verifier is free again afterwards
    inner.fail = False
    assert verifier.score(["p"], [["x"]], [0])[0].scores == (0.5,)
