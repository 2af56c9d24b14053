"""Whatever a model writes is stored and read back intact, on SQLite and PostgreSQL: NUL bytes,
lone UTF-16 surrogates (not encodable as UTF-8), 100k-character completions, LaTeX, empty
answers — through the real writer (`store.write_shard`, COPY on PostgreSQL), every reader and
the export (parquet, jsonl, csv).

The encoding is `ttscale.store.encoding` (docs/store.md, Encoding): clean text verbatim, text
with NUL / a lone surrogate / the marker as `"\\x01ttscale-json:" + json.dumps(text)`.
`read_problem_result` returns the exact Python strings; polars frames, and so exports, hold
valid UTF-8 only, so there (and only there) a lone surrogate reads back as U+FFFD."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttscale import store
from ttscale.spreadsheet import neutralise_formulas
from ttscale.store.encoding import MARKER
from ttscale.store.export import export_sweep
from ttscale.tree import Candidate, Node, Problem, ProblemResult, ShardOutcome, Verdict
from tests.fuzz import fuzz_examples
from tests.integration.test_store_samples import sample_cell, sample_sweep

LATEX = (
    "$$\\int_0^1 x^2\\,dx = \\tfrac{1}{3}$$\n\n\\begin{align} a &= b \\\\ c &= d \\end{align}\n\n"
    "50\\% of \\{1,2\\} \\text{«ü» 中文 😀} \\boxed{\\dfrac{\\sqrt{2}}{2}}"
)
OUTPUTS = {
    # name: (candidate text, extracted answer)
    "nul": ("before\x00after\n\nThe answer is \\boxed{\x00}", "\x00"),
    "lone_surrogates": ("high \ud800 alone, low \udc80, pair 😀, half \udfff", "\ud83d"),
    "huge": ("x" * 50_000 + "\n\n" + "é" * 49_989 + "\\boxed{7}", "7" * 100_000),  # 100,000 characters each
    "latex": (LATEX, "\\dfrac{\\sqrt{2}}{2}"),
    "empty_answer": ("\\boxed{}", ""),
    "empty_text": ("", None),
    "marker": (MARKER + '"looks escaped"', MARKER),
    "sql": ("'; DROP TABLE candidates; --", "'); DELETE FROM nodes; --"),
    "control": ("\r\n\t\x1b[2J\x7f\u2028\u2029\ufeff", "\x01"),
}
OUTPUTS_INDEX = {name: i for i, name in enumerate(OUTPUTS)}
_SEEDS = itertools.count(1000)  # a fresh cell per hypothesis example (one store per test)


def frame_text(text: str | None) -> str | None:
    """What a polars frame (and so an export) holds for `text`."""
    return None if text is None else "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def make_outcome(cell_id: str, problem_id: str, texts_and_answers: list[tuple[str, str | None]], problem_text: str, gold: str) -> ShardOutcome:
    """One problem whose tree holds every text as a node and every (text, answer) as a candidate."""
    nodes = [Node(0, None, 0, problem_text, "step", 10, 3, 0, (0.5,), 4, "step", selected=True)]
    nodes += [Node(i + 1, 0, 1, text, "completion", 12, 7, 0, (0.25, float("nan")), 4, "eos", selected=True) for i, (text, _) in enumerate(texts_and_answers)]
    candidates = [
        Candidate(i, text, i + 1, (0.5, 0.25), 0.25, 12, 10, "eos", answer, answer == gold if answer is not None else None,
                  "boxed" if answer is not None else None, i if answer is not None else -1)  # fmt: skip
        for i, (text, answer) in enumerate(texts_and_answers)
    ]
    result = ProblemResult(problem_id, nodes, candidates, n_prompt_tokens=10, n_generated_tokens=3 + 7 * len(candidates), n_policy_calls=2)
    verdicts = [Verdict(problem_id, "naive", len(candidates), texts_and_answers[0][1], False), Verdict(problem_id, "pass", len(candidates), None, False)]
    problem = Problem("fuzz \x00 \ud800", problem_id, problem_text, gold, 3, "Algebra \udc80", {"note": "\x00\ud800", "raw": problem_text[:50]})
    return ShardOutcome(cell_id, [problem], [result], verdicts, policy_params=1000, verifier_params=0, elapsed_s=1.0)


@pytest.fixture
def engine(store_url):
    eng = store.make_engine(store_url)
    yield eng
    eng.dispose()


def register(engine, seed: int, sweep_id: str | None = None):
    cell = sample_cell(seed=seed)
    with store.transaction(engine) as conn:
        store.register_cell(conn, cell, sweep_id=sweep_id)
    return cell


def test_model_outputs_round_trip_through_writer_readers_and_exports(engine, tmp_path):
    spec = sample_sweep(name="awkward \x00 outputs")
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, spec, "name: awkward\n", "fuzz \ud800")
    cell = register(engine, 0, sweep_id)
    pairs = list(OUTPUTS.values())
    problem_id = "p/\x00/\ud800/'1"
    outcome = make_outcome(cell.cell_id, problem_id, pairs, problem_text=LATEX + "\x00" + "\udfff", gold="\\frac{\\sqrt{2}}{2}")
    with store.transaction(engine) as conn:
        report = store.write_shard(conn, outcome)
        assert report.n_written_problems == 1
        assert store.write_shard(conn, outcome).n_skipped_problems == 1  # the escaped id is found again
    written = outcome.results[0]

    with engine.connect() as conn:
        got = store.read_problem_result(conn, cell.cell_id, problem_id)
        assert store.done_problem_ids(conn, cell.cell_id) == {problem_id}
        candidates = store.read_candidates(conn, [cell.cell_id], with_text=True)
        nodes = store.read_nodes(conn, cell.cell_id, problem_id)
        verdicts = store.read_verdicts(conn, [cell.cell_id])
        problems = store.read_problems(conn, dataset=outcome.problems[0].dataset, problem_ids=[problem_id])
        raw = conn.execute(sa.text("SELECT text FROM candidates ORDER BY idx")).scalars().all()

    # Exact, surrogates and NUL included.
    assert [c.text for c in got.candidates] == [t for t, _ in pairs]
    assert [c.answer for c in got.candidates] == [a for _, a in pairs]
    assert [n.text for n in got.nodes] == [outcome.problems[0].text] + [t for t, _ in pairs]
    assert got.problem_id == problem_id
    assert replace(got, nodes=[]) == replace(written, nodes=[])  # NaN scores aside (NaN != NaN), everything equal
    assert len(got.candidates[2].text) == 100_000 and len(got.candidates[2].answer) == 100_000

    # Frames: exact, except a lone surrogate → U+FFFD.
    assert candidates["text"].to_list() == [frame_text(t) for t, _ in pairs]
    assert candidates["answer"].to_list() == [frame_text(a) for _, a in pairs]
    assert candidates["answer"][OUTPUTS_INDEX["empty_answer"]] == "" and candidates["answer"][OUTPUTS_INDEX["empty_text"]] is None
    assert nodes["text"].to_list()[1:] == [frame_text(t) for t, _ in pairs]
    assert set(candidates["problem_id"]) == {frame_text(problem_id)}
    assert verdicts.filter(pl.col("method") == "naive")["answer"].to_list() == [pairs[0][1]]
    row = problems.row(0, named=True)
    assert (row["text"], row["answer"], row["subject"]) == (frame_text(outcome.problems[0].text), "\\frac{\\sqrt{2}}{2}", "Algebra \ufffd")
    assert json.loads(row["metadata"]) == {"note": "\x00\ud800", "raw": outcome.problems[0].text[:50]}

    # Stored form: clean text verbatim (searchable in SQL), the rest escaped to pure ASCII.
    assert raw[OUTPUTS_INDEX["latex"]] == LATEX
    assert raw[OUTPUTS_INDEX["huge"]] == pairs[OUTPUTS_INDEX["huge"]][0]
    assert raw[OUTPUTS_INDEX["nul"]].startswith(MARKER) and raw[OUTPUTS_INDEX["nul"]].isascii()
    assert raw[OUTPUTS_INDEX["marker"]].startswith(MARKER + '"\\u0001ttscale-json:')

    # Exports: every format reads back what the frames hold.
    readers = {"parquet": pl.read_parquet, "jsonl": pl.read_ndjson}
    for fmt, read in readers.items():
        out = tmp_path / fmt
        with engine.connect() as conn:
            export_sweep(conn, sweep_id, out, fmt)
        exported = read(out / f"candidates.{fmt}")
        assert exported["text"].to_list() == candidates["text"].to_list(), fmt
        assert exported["answer"].to_list() == candidates["answer"].to_list(), fmt
        assert read(out / f"nodes.{fmt}")["text"].to_list() == nodes["text"].to_list(), fmt
        assert read(out / f"problems.{fmt}")["text"].to_list() == [row["text"]], fmt
        manifest = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
        assert manifest["name"] == "awkward \x00 outputs" and manifest["created_by"] == "fuzz \ufffd"
    with engine.connect() as conn:
        export_sweep(conn, sweep_id, tmp_path / "csv", "csv")
    exported = pl.read_csv(tmp_path / "csv" / "candidates.csv", infer_schema=False)
    # csv has no NULL/empty distinction for strings, and a cell a spreadsheet would run as a
    # formula starts with `'` (spreadsheet.neutralise_formulas): the rest is exact.
    expected = neutralise_formulas(candidates.select("text"))["text"].to_list()
    assert exported["text"].fill_null("").to_list() == [t or "" for t in expected]


ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)  # surrogates and NUL included


@settings(max_examples=fuzz_examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(ANY_TEXT, st.none() | ANY_TEXT), min_size=1, max_size=4), ANY_TEXT, ANY_TEXT.filter(bool))
def test_any_python_strings_round_trip_through_the_store(engine, pairs, problem_text, problem_id):
    cell = register(engine, next(_SEEDS))
    outcome = make_outcome(cell.cell_id, problem_id, pairs, problem_text, gold="1")
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
    with engine.connect() as conn:
        got = store.read_problem_result(conn, cell.cell_id, problem_id)
        frame = store.read_candidates(conn, [cell.cell_id], with_text=True)
    assert [(c.text, c.answer) for c in got.candidates] == pairs
    assert [n.text for n in got.nodes] == [problem_text] + [t for t, _ in pairs]
    assert frame["text"].to_list() == [frame_text(t) for t, _ in pairs]
    assert frame["answer"].to_list() == [frame_text(a) for _, a in pairs]
