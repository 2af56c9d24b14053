from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ttscale.aggregation import aggregate
from ttscale.verifiers import split_steps
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
