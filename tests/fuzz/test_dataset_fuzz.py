"""Arbitrary JSONL into the dataset loader: problems, or a DataError (exit code 2) in one line
naming the file, the line and the field — never a traceback. The loader only reads: nothing is
stored (the CLI cases in test_cli_bad_input_fuzz.py check the store is untouched)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ttscale.data import load_jsonl, load_problems
from ttscale.errors import DataError
from ttscale.spec import DatasetSpec
from tests.fuzz import fuzz_examples

FUZZ = settings(max_examples=fuzz_examples(), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
FIELDS = ["problem", "question", "answer", "id", "unique_id", "level", "subject", "solution", ""]


def load(tmp_path, content: bytes, name: str = "rows.jsonl"):
    path = tmp_path / name
    path.write_bytes(content)
    try:
        problems = load_jsonl(path, "fuzz")
    except DataError as err:
        assert_one_line(err, str(path))
        return None
    ids = [p.id for p in problems]
    assert len(set(ids)) == len(ids)
    for p in problems:
        assert isinstance(p.text, str) and p.text.strip()
        assert isinstance(p.answer, str) and p.answer.strip()
        assert p.level is None or isinstance(p.level, int)
        json.dumps(p.metadata)  # metadata stays JSON (the store keeps it as JSON text)
    return problems


def assert_one_line(err: DataError, label: str) -> None:
    message = str(err)
    assert err.exit_code == 2
    assert "\n" not in message and "\r" not in message, repr(message)
    assert message.splitlines() == [message], repr(message)  # no other line break either (\x85, \u2028, ...)
    # `path:LINE: ...` names the line (and the field, when one is at fault) or `path: ...` the file.
    assert re.match(re.escape(label) + r"(?::\d+)?: \S", message), message
    assert len(message) <= 400, len(message)


@FUZZ
@given(st.binary(max_size=400))
@example(b"[" * 100_000)  # json.loads raised RecursionError before the fix
@example(b'{"problem": "x", "answer": "y", "k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
@example(b"\xff\xfe\n")
@example(b'{"problem": "p", "answer": "1", "\\u2028": 1, "\\n": 2}\n{"question": "q"}\n')
def test_any_bytes_load_or_fail_in_one_line(tmp_path_factory, content):
    load(tmp_path_factory.mktemp("rows"), content)


@FUZZ
@given(st.lists(JSON, max_size=6))
def test_any_json_lines_load_or_fail_in_one_line(tmp_path_factory, rows):
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    load(tmp_path_factory.mktemp("rows"), content)


ROW = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), JSON, max_size=6)


@FUZZ
@given(st.lists(ROW, max_size=6))
def test_rows_with_any_field_values_load_or_name_the_field(tmp_path_factory, rows):
    content = "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows).encode()
    problems = load(tmp_path_factory.mktemp("rows"), content)
    if problems is None:
        return
    assert len(problems) == len(rows) - sum(1 for r in rows if not r)  # `{}` lines fail, so none here


@FUZZ
@given(st.lists(st.fixed_dictionaries({"problem": JSON, "answer": JSON}, optional={"id": JSON, "level": JSON}), min_size=1, max_size=5))
def test_problem_and_answer_of_any_type(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("rows") / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        problems = load_problems(DatasetSpec(name="jsonl", path=str(path)))
    except DataError as err:
        message = str(err)
        assert "\n" not in message
        assert message.startswith(str(path)) or message.startswith("dataset ")
        return
    for row, p in zip(rows, problems, strict=True):
        assert p.text == str(row["problem"]) and p.answer == str(row["answer"])


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"[" * 100_000 + b"\n", ":1: not valid JSON (nested too deeply)"),
        (b'{"question": "q", "\\n": 1}\n', ":1: missing field `answer` (has: '\\n', question)"),
        (b'{"problem": "p", "answer": "\\u001b[2J"}\n{"problem": "p"}\n', ":2: missing field `answer` (has: problem)"),
    ],
)
def test_regressions_found_by_the_fuzzer(tmp_path, content, expected):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_jsonl(path, "fuzz")
    assert_one_line(err.value, str(path))
    assert str(err.value) == str(path) + expected
