from __future__ import annotations

import json

import pytest

from ttscale.data import load_jsonl, load_problems
from ttscale.data.arith import generate_arith
from ttscale.errors import DataError
from ttscale.spec import DatasetSpec


def test_bundled_sets_load_with_stable_ids():
    math = load_problems(DatasetSpec(name="math500"))
    assert len(math) == 500 and math[0].id == "test/precalculus/807.json" and math[0].level == 2
    gsm = load_problems(DatasetSpec(name="gsm8k", limit=3))
    assert gsm[0].answer == "18"


def test_levels_and_limit():
    probs = load_problems(DatasetSpec(name="math500", levels=(5,), limit=7))
    assert len(probs) == 7 and {p.level for p in probs} == {5}


def test_arith_is_deterministic_and_correct():
    a, b = generate_arith(50, seed=3), generate_arith(50, seed=3)
    assert a == b and a != generate_arith(50, seed=4)
    assert [p.level for p in a[:5]] == [1, 2, 3, 4, 5]
    assert all(int(p.answer) >= 0 for p in a)
    assert sum(p.text.count(".") for p in a if p.level == 5) > sum(p.text.count(".") for p in a if p.level == 1)


def test_arith_fills_limit_after_level_filter():
    assert len(load_problems(DatasetSpec(name="arith", limit=20, levels=(2,)))) == 20


def test_jsonl_errors_name_the_line_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n" + json.dumps({"problem": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field `answer` \(has: problem\)"):
        load_jsonl(f, "bad")
    f.write_text("{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: not valid JSON"):
        load_jsonl(f, "bad")
    with pytest.raises(DataError, match="no such file"):
        load_jsonl(tmp_path / "missing.jsonl", "missing")


def test_empty_dataset_is_an_error(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("")
    with pytest.raises(DataError, match="no problems"):
        load_problems(DatasetSpec(name="jsonl", path=str(f)))
