"""Verifier quality (AUC, ties) on hand-counted candidates."""

from __future__ import annotations

import polars as pl
import pytest

from ttscale.analysis.verifier_quality import verifier_quality

CELLS = pl.DataFrame({
    "cell_id": ["a", "flat", "none"], "verifier": ["v", "v", None], "aggregation": ["last", "last", "last"],
})  # fmt: skip


def _cands(cell: str, rows: list[tuple[str, float | None, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"cell_id": [cell] * len(rows), "problem_id": [r[0] for r in rows], "score": [r[1] for r in rows],
         "correct": [r[2] for r in rows]},
        schema={"cell_id": pl.String, "problem_id": pl.String, "score": pl.Float64, "correct": pl.Boolean},
    )  # fmt: skip


def test_auc_pooled_and_within_problems_by_hand():
    # Candidates without a score or a verdict are left out: r keeps only its wrong 0.3.
    # Problem p: right 0.9, 0.4; wrong 0.5, 0.1 -> pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
    # Problem q: right 0.5; wrong 0.5 (tie, half), 0.2 -> 1.5/2 = 0.75. Problem r: one class only, no AUC.
    # Pooled: right {0.9, 0.4, 0.5}, wrong {0.5, 0.1, 0.5, 0.2, 0.3}: 0.9 beats 5; 0.4 beats 3 (0.1, 0.2, 0.3);
    # 0.5 beats 3 and ties 2 -> (5 + 3 + 3 + 1) / 15 = 12/15 = 0.8.
    # Tied pairs: p none of 6; q one of 3; r has no pair -> mean(0, 1/3).
    cands = pl.concat([
        _cands("a", [("p", 0.9, True), ("p", 0.5, False), ("p", 0.4, True), ("p", 0.1, False),
                     ("q", 0.5, True), ("q", 0.5, False), ("q", 0.2, False), ("r", 0.3, False), ("r", None, True),
                     ("r", 0.7, None)]),
        _cands("flat", [("p", 0.5, True), ("p", 0.5, False), ("q", 0.5, False), ("q", 0.5, False)]),
        _cands("none", [("p", None, True)]),
    ])  # fmt: skip
    got = {r["cell_id"]: r for r in verifier_quality(CELLS, cands).iter_rows(named=True)}
    assert set(got) == {"a", "flat"}  # a cell without a verifier has no row
    a = got["a"]
    assert (a["n_candidates"], a["n_correct"], a["n_problems_mixed"]) == (8, 3, 2)
    assert a["auc"] == pytest.approx(12 / 15)
    assert a["auc_within"] == pytest.approx(0.75)
    assert a["tied_pairs"] == pytest.approx((0 + 1 / 3) / 2)
    flat = got["flat"]
    assert (flat["auc"], flat["auc_within"], flat["tied_pairs"]) == (0.5, 0.5, 1.0)


def test_no_scored_candidates_gives_an_empty_table():
    assert verifier_quality(CELLS, _cands("none", [("p", None, True)])).is_empty()
