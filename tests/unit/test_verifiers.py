from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttscale.aggregation import aggregate
from ttscale.verifiers import split_steps
from ttscale.verifiers.arith_chain import ArithChainVerifier, answer_value, chain_scores, stated_answer
from ttscale.verifiers.arithmetic import ArithmeticVerifier, check_claims
from ttscale.verifiers.cache import CachingVerifier
from ttscale.verifiers.scripted import ScriptedVerifier


def test_arithmetic_checker_on_right_and_wrong_steps():
    v = ArithmeticVerifier()
    assert v.score_step("12 + 35 = 47") == 1.0
    assert v.score_step("15 * 6 = 90, then 90 - 9 = 80") == 0.5
    assert v.score_step("15 × 6 = 91") == 0.0
    assert v.score_step("$3*(4+5)=27$ and 1,200 + 300 = 1,500") == 1.0
    assert v.score_step("Let the number of apples be x.") == 0.5  # no claim: neutral
    assert check_claims("10 / 3 = 3.33") == (1, 1)
    assert check_claims("10 / 3 = 3.5") == (0, 1)


def test_arithmetic_verifier_scores_only_requested_steps():
    got = ArithmeticVerifier().score(["p"], [["1 + 1 = 2", "2 + 2 = 5"]], [1])
    assert got[0].scores == (0.0,)


MAYA = "Maya has 3 shells. She loses 2. How many shells does Maya have now?"


def test_arith_chain_scores_the_answer_step_by_the_chain_before_it():
    # Hand-computed from the module docstring's formula.
    assert chain_scores(MAYA, ["3 - 2 = 1", "So the answer is $\\boxed{1}$."]) == [1.0, 1.0]
    # a wrong answer keeps a quarter of the chain's credit
    assert chain_scores(MAYA, ["3 - 2 = 1", "So the answer is $\\boxed{5}$."]) == [1.0, 0.25]
    # a true claim about a number the problem never gave is not grounded: no credit
    assert chain_scores(MAYA, ["7 - 2 = 5", "The answer is 5."]) == [0.0, 0.0]
    # an answer with no chain: neutral, times the wrong-answer factor, times zero coverage
    assert chain_scores(MAYA, ["Let me think.", "The answer is \\boxed{1}."]) == [0.5, 0.0]
    # a claim repeated verbatim counts once and uses the problem's numbers once
    assert chain_scores(MAYA, ["3 - 2 = 1", "Again, 3 - 2 = 1", "3 - 2 = 1 so \\boxed{1}"]) == [1.0, 1.0, 1.0]
    # two of the problem's three numbers used: two thirds of the credit
    assert chain_scores("Tom has 4 pens and 6 pencils. He gives away 1 pen.", ["4 - 1 = 3", "\\boxed{3}"]) == pytest.approx([1.0, 2 / 3])


def test_arith_chain_is_causal_so_a_cache_and_a_search_can_use_it():
    steps = ["3 - 2 = 1", "1 + 1 = 2", "So the answer is 2.", "Wait: 3 - 2 = 1", "\\boxed{1}"]
    full = chain_scores(MAYA, steps)
    assert all(chain_scores(MAYA, steps[: i + 1]) == full[: i + 1] for i in range(len(steps)))
    assert ArithChainVerifier().score([MAYA], [steps], [3])[0].scores == tuple(full[3:])


def test_arith_chain_reads_stated_answers():
    assert stated_answer("so \\boxed{\\frac{1}{2}} and then \\boxed{12}") == "12"
    assert stated_answer("Therefore, the final answer is: 38 apples. I hope it is correct.") == "38 apples"
    assert stated_answer("3 - 2 = 1") is None
    assert [answer_value(a) for a in ("1,250", "2+3 = 5", "38 apples", "\\text{38}", "3/4", "2 and 3")] == [1250, 5, 38, 38, None, None]


def test_split_steps_on_blank_lines():
    assert split_steps("a\n\nb\n\n\n\nc\n\n") == ["a", "b", "c"]


def test_caching_verifier_asks_only_new_steps():
    inner = ScriptedVerifier()
    cached = CachingVerifier(inner)
    first = cached.score(["p"], [["a", "b"]])
    again = cached.score(["p", "p"], [["a", "b"], ["a", "b", "c"]])
    assert inner.calls == [2, 1]  # the second call scored only "c"
    assert again[0].scores == first[0].scores
    assert again[1].scores[:2] == first[0].scores


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_prod_le_min_le_last(scores):
    assert aggregate(scores, "prod") <= aggregate(scores, "min") + 1e-12
    assert aggregate(scores, "min") <= aggregate(scores, "last")
