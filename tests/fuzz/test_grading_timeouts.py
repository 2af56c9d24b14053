"""Answers that make sympy hang are cut off and count as unparsed, from the main thread and
from worker threads (Prefect tasks), and never stall the process or a shard.

math-verify's own timeouts (signal.alarm) work only in the main thread and cannot interrupt a
computation that holds the GIL: `9^{9^{9^{9}}}` graded in a thread used to freeze the whole
process (even the main thread) for minutes. `ttscale.grading` now runs math-verify in a child
process with a hard per-request limit. The `fast_limits` fixture gives each test a fresh child
with short limits, so the suite stays quick."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ttscale import grading
from ttscale.runner import grade
from ttscale.tree import Candidate, Node, Problem, ProblemResult
from tests.fuzz import fuzz_examples

PATHOLOGICAL = [
    "9^{9^{9^{9}}}",  # a power tower: held the GIL, froze every thread
    "10^{10^{10}}",
    "100000000!",
    "(x+1)^{100000}",
    "2^{2^{2^{2^{2^{2^{2}}}}}}",
]
SOFT_S, HARD_S = 1, 6.0


@pytest.fixture
def fast_limits(monkeypatch):
    """A fresh grading child with a 1 s math-verify limit and a 6 s hard limit; caches cleared."""
    monkeypatch.setattr(grading, "PARSE_TIMEOUT_S", SOFT_S)
    monkeypatch.setattr(grading, "CALL_TIMEOUT_S", HARD_S)
    checker = grading._Checker()
    monkeypatch.setattr(grading, "_CHECKER", checker)
    grading.parses.cache_clear()
    grading.equivalent.cache_clear()
    assert checker.ask("parse", "1") is True  # started (and warm) before any clock runs
    yield checker
    checker.close()
    grading.parses.cache_clear()
    grading.equivalent.cache_clear()


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


@pytest.mark.parametrize("answer", PATHOLOGICAL)
def test_pathological_answers_are_unparsed_within_the_limit_in_the_main_thread(fast_limits, answer):
    got, elapsed = timed(grading.equivalent, answer, "0.5")
    assert got is False
    # A parse tries two forms, each stopped by math-verify's alarm at SOFT_S; the hard limit caps it.
    assert elapsed < HARD_S + 2, elapsed
    assert grading.parses(answer) is False  # remembered: the second comparison is free
    assert timed(grading.equivalent, answer, "3")[1] < 0.5


def test_pathological_answers_in_a_worker_thread_do_not_stall_the_process(fast_limits):
    results: dict[str, bool] = {}

    def work():
        for answer in PATHOLOGICAL:
            results[answer] = grading.equivalent(answer, "\\frac{1}{2}")
        results["sane"] = grading.equivalent("\\frac{2}{4}", "0.5")

    worker = threading.Thread(target=work, daemon=True)
    ticks = 0
    start = time.perf_counter()
    worker.start()
    while worker.is_alive() and time.perf_counter() - start < 120:
        time.sleep(0.05)
        ticks += 1  # the main thread keeps running: nothing holds the GIL for long
    elapsed = time.perf_counter() - start
    assert not worker.is_alive(), "grading in a thread did not finish"
    assert results == {**dict.fromkeys(PATHOLOGICAL, False), "sane": True}
    assert elapsed < len(PATHOLOGICAL) * (HARD_S + 2)
    assert ticks >= elapsed / 0.05 * 0.5, (ticks, elapsed)  # at least half the expected ticks


def test_a_request_past_the_hard_limit_kills_the_child_and_grading_goes_on(monkeypatch, fast_limits):
    monkeypatch.setattr(grading, "CALL_TIMEOUT_S", 0.5)  # below math-verify's own 1 s: the kill path
    got, elapsed = timed(grading.equivalent, "9^{9^{9^{9}}}", "0.5")
    assert got is False and elapsed < 3
    assert fast_limits.n_killed == 1
    monkeypatch.setattr(grading, "CALL_TIMEOUT_S", HARD_S)
    assert grading.equivalent("\\frac{1}{2}", "0.5") is True  # a new child answers
    assert grading.group_equivalent(["2", "2.0", "x", None]) == [0, 0, 1, -1]


def _result(problem_id: str, texts: list[str]) -> ProblemResult:
    nodes = [Node(i, None, 0, t, "completion", 10, 5) for i, t in enumerate(texts)]
    candidates = [Candidate(i, t, i, (), None, 10, 5, "eos") for i, t in enumerate(texts)]
    return ProblemResult(problem_id, nodes, candidates, n_prompt_tokens=10, n_generated_tokens=5 * len(texts))


def test_a_shard_with_pathological_answers_is_graded_in_bounded_time_in_a_thread(fast_limits):
    """What a Prefect shard task does after the search: grade every candidate (`runner.grade`)."""
    problem = Problem("fuzz", "p0", "What is half of one?", "\\frac{1}{2}", 1)
    texts = [f"So the answer is $\\boxed{{{a}}}$." for a in PATHOLOGICAL] + ["It is \\boxed{0.5}", "\\boxed{1/2}", "\\boxed{3}", "no answer"]
    out: dict = {}
    worker = threading.Thread(target=lambda: out.setdefault("r", grade(problem, _result("p0", texts))), daemon=True)
    start = time.perf_counter()
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the shard's grading stalled"
    assert time.perf_counter() - start < len(PATHOLOGICAL) * (HARD_S + 2) + 10
    cands = out["r"].candidates
    k = len(PATHOLOGICAL)
    assert [c.answer for c in cands[:k]] == PATHOLOGICAL  # extracted, but ...
    assert [c.correct for c in cands[:k]] == [False] * k  # ... unparsed: never correct
    assert len({c.answer_class for c in cands[:k]}) == k  # and equal to nothing else
    assert [c.correct for c in cands[k:]] == [True, True, False, False]
    assert cands[k].answer_class == cands[k + 1].answer_class != cands[k + 2].answer_class
    assert cands[-1].answer_class == -1


LATEX_BITS = st.sampled_from(["\\frac{", "}{", "}", "^{", "_", "\\sqrt{", "!", "(", ")", "x", "9", "10", "+", "-", "\\cdot", "\\pi", "e", ".", ","])


@settings(max_examples=fuzz_examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(LATEX_BITS, max_size=12).map("".join), st.text(max_size=30))
@example("\\frac{" * 60 + "1" + "}{2}" * 60, "0.5")  # over MAX_ANSWER_CHARS: unparsed without asking
@example("\x00\ud800", "1")
def test_any_answer_pair_compares_to_a_bool_without_raising(fast_limits, a, b):
    got = grading.equivalent(a, b)
    assert got is (a == b) or isinstance(got, bool)
    assert grading.equivalent(a, a) is True


@settings(max_examples=fuzz_examples(), deadline=None)
@given(st.text(max_size=2000))
def test_extract_answer_never_raises(text):
    answer, method = grading.extract_answer(text)
    assert (answer is None) == (method is None)


@pytest.mark.parametrize(
    "text",
    ["the answer is " * 10_000, "1," * 50_000, "\\boxed{" * 20_000, "answer: $" * 12_000, "9" * 100_000, "a" * 100_000 + "\\boxed{1}"],
)
def test_extracting_from_100k_character_completions_is_fast(text):
    _, elapsed = timed(grading.extract_answer, text)
    assert elapsed < 2.0, elapsed
