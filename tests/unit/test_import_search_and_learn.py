"""Importing completions in the search-and-learn layout (tests/data/search_and_learn_tiny.jsonl).

The file holds 4 problems × 4 completions with per-step scores. By hand ("last" aggregation):

A (gold 0.5): \\frac{1}{2} .3 ✓ | 0.25 .7 ✗ | 0.5 .4 ✓ | 0.25 .2 ✗
B (gold 3):   unparsed .95 ✗ | 4 .6 ✗ | 3 .5 ✓ | 3.0 .3 ✓
C (gold 2/3): 2/3 .9 ✓ | 4/6 .8 ✓ | 0.6 .85 ✗ | 2/3 .1 ✓
D (gold 10):  12 .4 ✗ | 12 .45 ✗ | 10 .9 ✓ | 11 .3 ✗

prefix n=1: the first candidate: A ✓ B ✗ C ✓ D ✗ for every method → 0.5.
n=2  naive A ✗(.7) B ✗(unparsed .95) C ✓ D ✗ → 0.25; weighted A ✗(.7>.3) B ✗(only 4) C ✓ D ✗ → 0.25;
     majority A ✓(1-1 tie, first) B ✗ C ✓ D ✗ → 0.5.
n=4  naive A ✗ B ✗ C ✓ D ✓(.9) → 0.5; weighted A ✗(.9>.7) B ✓(.8>.6) C ✓ D ✓(.9>.85) → 0.75;
     majority A ✓(2-2 tie, first) B ✓ C ✓ D ✗(12 twice) → 0.75.
pass@n (unbiased, c = 2, 2, 3, 1 of 4): n=1 (.5+.5+.75+.25)/4 = .5; n=2 (5/6+5/6+1+1/2)/4; n=4 1.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from ttscale import grading
from ttscale.analysis.accuracy import cell_accuracy
from ttscale.analysis.frames import candidates_frame
from ttscale.analysis.verdicts import problem_verdicts
from ttscale.errors import DataError, SpecError
from ttscale.importers.search_and_learn import convert, read_completions
from ttscale.tree import check_tree

TINY = Path(__file__).parents[1] / "data" / "search_and_learn_tiny.jsonl"
MODEL = "meta-llama/Llama-3.2-1B-Instruct"

HAND = {
    ("naive", 1): 0.5, ("naive", 2): 0.25, ("naive", 4): 0.5,
    ("weighted", 1): 0.5, ("weighted", 2): 0.25, ("weighted", 4): 0.75,
    ("majority", 1): 0.5, ("majority", 2): 0.5, ("majority", 4): 0.75,
    ("pass", 1): 0.5, ("pass", 2): (5 / 6 + 5 / 6 + 1 + 1 / 2) / 4, ("pass", 4): 1.0,
}  # fmt: skip


def _convert(**kw):
    args = {"model": MODEL, "strategy": "best_of_n", "dataset": "math500"} | kw
    return convert(read_completions(TINY), **args)


def test_prefix_accuracy_equals_hand_counts():
    cell, outcome = _convert()
    acc = cell_accuracy(problem_verdicts(candidates_frame([outcome]), mode="prefix"))
    got = {(r["method"], r["n"]): r["accuracy"] for r in acc.iter_rows(named=True)}
    assert set(got) == set(HAND)
    for key, value in HAND.items():
        assert got[key] == pytest.approx(value), key


def test_stored_verdicts_agree_with_hand_counts():
    _, outcome = _convert()
    by = Counter()
    for v in outcome.verdicts:
        if v.source == "ttscale":
            by[(v.method, v.n)] += v.correct
    for method in ("naive", "weighted", "majority", "pass"):
        for n in (1, 2, 4):
            assert by[(method, n)] / 4 == pytest.approx(HAND[(method, n)]), (method, n)  # one pass@n, stored and analysed
    weighted4 = {v.problem_id: v.answer for v in outcome.verdicts if v.method == "weighted" and v.n == 4 and v.source == "ttscale"}
    assert weighted4["test/a.json"] == "0.25" and weighted4["test/b.json"] == "3"


def test_published_predictions_are_kept_graded_beside_ttscale_verdicts():
    _, outcome = _convert()
    published = {(v.problem_id, v.method, v.n): (v.answer, v.correct) for v in outcome.verdicts if v.source == "published"}
    # Each row of the file carries `pred_weighted@4`; the reference weighted A's 0.25 (.7+.2 > .3+.4).
    assert set(published) == {(p.id, "weighted", 4) for p in outcome.problems}
    assert published[("test/a.json", "weighted", 4)] == ("0.25", 0.0)
    assert published[("test/b.json", "weighted", 4)] == ("3", 1.0)
    assert sum(correct for _, correct in published.values()) / 4 == HAND[("weighted", 4)]  # the same 0.75 as ttscale's


def test_cell_spec_records_model_strategy_n_and_imported_verifier():
    cell, outcome = _convert(dataset="sal-math500")
    assert (cell.model, cell.strategy.name, cell.n, cell.verifier) == (MODEL, "best_of_n", 4, "imported")
    assert cell.dataset.label == "sal-math500" and cell.aggregation == "last"
    assert outcome.cell_id == cell.cell_id
    assert {p.dataset for p in outcome.problems} == {"sal-math500"}


def test_each_candidate_is_one_completion_node_with_its_step_scores():
    _, outcome = _convert()
    a = outcome.results[0]
    check_tree(a)
    assert [(n.parent, n.depth, n.kind) for n in a.nodes] == [(None, 0, "completion")] * 4
    assert a.nodes[0].scores == (0.9, 0.3)
    assert a.candidates[1].step_scores == (0.8, 0.7) and a.candidates[1].score == 0.7
    assert [c.n_generated_tokens for c in a.candidates] == [12, 15, 8, 15]
    assert a.n_generated_tokens == 50
    assert outcome.problems[0].level == 2 and outcome.problems[0].subject == "Prealgebra"
    assert outcome.problems[0].metadata == {}  # the published prediction is a verdict, not metadata
    # no unique_id: a content hash, as the dataset loader gives
    from ttscale.data import content_id

    assert outcome.problems[2].id == content_id("Simplify $4/6$.")


@pytest.mark.parametrize("how,expected", [("last", 0.3), ("min", 0.3), ("prod", 0.9 * 0.3)])
def test_step_scores_are_aggregated_as_asked(how, expected):
    cell, outcome = _convert(aggregation=how)
    assert cell.aggregation == how
    assert outcome.results[0].candidates[0].score == pytest.approx(expected)
    assert outcome.results[0].candidates[1].score == pytest.approx({"last": 0.7, "min": 0.7, "prod": 0.56}[how])


class CountingGrader:
    """ttscale.grading, counting every call by its arguments."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()

    def extract_answer(self, text):
        self.calls[("extract", text)] += 1
        return grading.extract_answer(text)

    def parse_gold(self, answer):
        self.calls[("gold", answer)] += 1
        return grading.parse_gold(answer)

    def is_correct(self, answer, gold):
        self.calls[("correct", gold.answer, answer)] += 1
        return grading.is_correct(answer, gold)

    def group_equivalent(self, answers):
        for a in answers:
            self.calls[("group", a)] += 1
        return grading.group_equivalent(answers)


def test_grading_is_memoised_per_distinct_problem_and_answer():
    counter = CountingGrader()
    rows = read_completions(TINY)
    _, outcome = convert(rows, model=MODEL, strategy="best_of_n", dataset="math500", grader=counter)
    kinds = Counter(kind for kind, *_ in counter.calls.elements())
    # 16 completions, 3 duplicated texts ("0.25" one in A, "\boxed{\frac{2}{3}}" in C,
    # "\boxed{12}" in D): 13 distinct texts, each extracted once; and the 4 published
    # predictions, 2 of them ("\boxed{\frac{2}{3}}", "\boxed{10}" of C, D) texts seen already
    assert kinds["extract"] == 13 + 2
    assert all(count == 1 for count in counter.calls.values()), [k for k, c in counter.calls.items() if c > 1]
    # distinct (problem, answer) pairs: A 3, B 4 (incl. unparsed), C 3, D 3
    assert kinds["correct"] == 13
    assert kinds["gold"] == 4
    assert kinds["group"] == 12  # distinct parsed answers per problem: 3 + 3 + 3 + 3
    # the memo does not change results
    _, plain = _convert()
    assert [c.answer_class for r in outcome.results for c in r.candidates] == [
        c.answer_class for r in plain.results for c in r.candidates
    ]


def test_parquet_reads_the_same_as_jsonl(tmp_path):
    path = tmp_path / "tiny.parquet"
    read_completions(TINY).write_parquet(path)
    cell_j, out_j = _convert()
    cell_p, out_p = convert(read_completions(path), model=MODEL, strategy="best_of_n", dataset="math500")
    assert cell_p.cell_id == cell_j.cell_id
    assert candidates_frame([out_p]).equals(candidates_frame([out_j]))


def test_bad_files_and_options_fail_in_one_line(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_completions(tmp_path / "absent.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x", "answer": "1"}\n')
    with pytest.raises(DataError, match="missing column.*completions, scores"):
        read_completions(bad)
    rows = read_completions(TINY)
    broken = rows.with_columns(pl.col("scores").list.head(3))
    with pytest.raises(DataError, match="row 0: 3 score lists for 4 completions"):
        convert(broken, model=MODEL, strategy="best_of_n", dataset="d")
    with pytest.raises(SpecError, match="--strategy: unknown 'best_of_m'"):
        convert(rows, model=MODEL, strategy="best_of_m", dataset="d")
    with pytest.raises(SpecError, match="multiple of"):
        convert(rows, model=MODEL, strategy="dvts", dataset="d", beam_width=3)
    with pytest.raises(SpecError, match="--aggregation"):
        convert(rows, model=MODEL, strategy="best_of_n", dataset="d", aggregation="mean")
    dup = pl.concat([rows.head(1), rows.head(1)])
    with pytest.raises(DataError, match="duplicate problem id 'test/a.json'"):
        convert(dup, model=MODEL, strategy="best_of_n", dataset="d")


def test_dvts_import_judges_every_prefix_and_beam_search_only_n():
    _, dvts = _convert(strategy="dvts")
    _, beam = _convert(strategy="beam_search")
    assert sorted({v.n for v in dvts.verdicts}) == [1, 2, 4]
    assert sorted({v.n for v in beam.verdicts}) == [4]
