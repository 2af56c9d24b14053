from __future__ import annotations

import threading

import pytest

from ttscale.grading import equivalent, extract_answer, group_equivalent, is_correct, parse_gold


@pytest.mark.parametrize(
    "text,answer,method",
    [
        ("Therefore, the final answer is: $\\boxed{38}$. I hope it is correct.", "38", "boxed"),
        ("so \\boxed{\\frac{1}{2}} and \\boxed{\\frac{3}{4}}", "\\frac{3}{4}", "boxed"),
        ("nested \\boxed{\\sqrt{x^{2}}} done", "\\sqrt{x^{2}}", "boxed"),
        ("The answer is 7.", "7", "phrase"),
        ("After all that, the final answer is: 1,250", "1,250", "phrase"),
        ("She has 12 then 15 apples", "15", "last_number"),
        ("Total is 1,200 coins", "1200", "last_number"),
        ("no idea", None, None),
        ("", None, None),
    ],
)
def test_extract_answer(text, answer, method):
    assert extract_answer(text) == (answer, method)


def test_equivalent_answers_written_differently():
    assert equivalent("\\frac{1}{2}", "0.5")
    assert equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)")
    assert not equivalent("\\frac{1}{2}", "0.6")
    assert is_correct("1250", parse_gold("1,250")) or is_correct("1250", parse_gold("1250"))
    assert not is_correct(None, parse_gold("3"))


def test_group_equivalent_uses_math_not_strings():
    assert group_equivalent(["\\frac{1}{2}", "0.5", "3", None, "1/2", "3.0"]) == [0, 0, 1, -1, 0, 1]
    assert group_equivalent([]) == []


def test_grading_works_outside_the_main_thread():
    out = {}

    def work():
        out["eq"] = equivalent("\\frac{2}{4}", "0.5")
        out["classes"] = group_equivalent(["2", "2.0", "x"])

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert out == {"eq": True, "classes": [0, 0, 1]}


def test_overlong_answers_count_as_unparsed():
    huge = "\\frac{" * 400 + "1" + "}{2}" * 400
    assert not equivalent(huge, "0.5")
