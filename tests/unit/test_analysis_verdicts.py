"""Vectorised selection (`analysis.verdicts`) against the one-problem reference and hand counts."""

from __future__ import annotations

import math
import random

import polars as pl
import pytest

from ttscale.analysis.passk import pass_at_k
from ttscale.analysis.verdicts import budgets, problem_verdicts, select_verdicts
from ttscale.selection import select


def frame(rows: list[tuple]) -> pl.DataFrame:
    """rows: (cell_id, problem_id, idx, answer_class, correct, score)."""
    return pl.DataFrame(
        rows,
        schema={
            "cell_id": pl.String,
            "problem_id": pl.String,
            "idx": pl.Int64,
            "answer_class": pl.Int64,
            "correct": pl.Boolean,
            "score": pl.Float64,
        },
        orient="row",
    )


def verdict(per_problem: pl.DataFrame, cell: str, problem: str, n: int, method: str) -> dict:
    rows = per_problem.filter(
        (pl.col("cell_id") == cell) & (pl.col("problem_id") == problem) & (pl.col("n") == n) & (pl.col("method") == method)
    )
    assert rows.height == 1, (cell, problem, n, method, rows)
    return rows.row(0, named=True)


def test_budgets_are_powers_of_two_and_n_itself():
    assert budgets(1) == [1]
    assert budgets(16) == [1, 2, 4, 8, 16]
    assert budgets(12) == [1, 2, 4, 8, 12]
    assert budgets(0) == []


# One problem, four candidates: class 0 (wrong, 0.9), class 1 twice (right, 0.5 each), unparsed (1.0).
HAND = [
    ("a", "p", 0, 0, False, 0.875),
    ("a", "p", 1, 1, True, 0.5),
    ("a", "p", 2, 1, True, 0.5),
    ("a", "p", 3, -1, False, 1.0),
]


def test_prefix_verdicts_match_hand_counts():
    v = select_verdicts(frame(HAND))
    # n=1: only idx 0 — every method picks it, wrong.
    for method in ("naive", "weighted", "majority"):
        assert verdict(v, "a", "p", 1, method)["idx"] == 0
        assert verdict(v, "a", "p", 1, method)["correct"] == 0.0
    # n=2: naive 0.875 > 0.5; weighted 0.875 vs 0.5; majority 1-1 tie → first class (idx 0).
    assert verdict(v, "a", "p", 2, "naive")["idx"] == 0
    assert verdict(v, "a", "p", 2, "weighted")["idx"] == 0
    assert verdict(v, "a", "p", 2, "majority")["idx"] == 0
    # n=4: naive takes the unparsed 1.0 (wrong); weighted 1.0 vs 0.875 → class 1; majority 2 vs 1 → class 1.
    assert verdict(v, "a", "p", 4, "naive") == {**verdict(v, "a", "p", 4, "naive"), "idx": 3, "correct": 0.0}
    assert verdict(v, "a", "p", 4, "weighted")["idx"] == 1
    assert verdict(v, "a", "p", 4, "weighted")["correct"] == 1.0
    assert verdict(v, "a", "p", 4, "majority")["idx"] == 1
    assert verdict(v, "a", "p", 4, "majority")["correct"] == 1.0
    # pass@n: unbiased, c=2 of N=4: 1/2, 1 - C(2,2)/C(4,2) = 5/6, 1.
    assert verdict(v, "a", "p", 1, "pass")["correct"] == pytest.approx(0.5)
    assert verdict(v, "a", "p", 2, "pass")["correct"] == pytest.approx(5 / 6)
    assert verdict(v, "a", "p", 4, "pass")["correct"] == pytest.approx(1.0)
    assert set(v["n"].to_list()) == {1, 2, 4}


def test_all_unparsed_is_wrong_and_points_at_the_first_candidate():
    rows = [("a", "p", 0, -1, False, 0.2), ("a", "p", 1, -1, False, 0.9)]
    v = select_verdicts(frame(rows))
    for method in ("majority", "weighted"):
        assert verdict(v, "a", "p", 2, method)["idx"] == 0
        assert verdict(v, "a", "p", 2, method)["correct"] == 0.0
    assert verdict(v, "a", "p", 2, "naive")["idx"] == 1


def test_unscored_cell_gets_only_majority_and_pass():
    rows = [("m", "p", i, i % 2, i % 2 == 0, None) for i in range(4)]
    v = select_verdicts(frame(rows))
    assert set(v["method"].to_list()) == {"majority", "pass"}
    assert verdict(v, "m", "p", 4, "majority")["idx"] == 0


def test_prefix_is_by_idx_order_not_row_order():
    rows = [("a", "p", 7, 0, True, 0.25), ("a", "p", 2, 1, False, 0.75), ("a", "p", 5, 1, False, 0.5)]
    shuffled = frame(rows)
    v = select_verdicts(shuffled)
    # first candidate by idx is idx 2 (class 1, wrong)
    assert verdict(v, "a", "p", 1, "naive")["idx"] == 2
    # all three: majority → class 1 (two votes), its first occurrence is idx 2
    assert verdict(v, "a", "p", 3, "majority")["idx"] == 2
    assert verdict(v, "a", "p", 3, "weighted")["idx"] == 2  # 1.25 vs 0.25


def _random_cells(rng: random.Random, n_cells: int = 6, n_problems: int = 12, low: int = 0) -> pl.DataFrame:
    rows = []
    for c in range(n_cells):
        n_cell = rng.choice([1, 3, 4, 8, 12])
        scored = c % 3 != 0
        for p in range(n_problems):
            count = n_cell if rng.random() < 0.8 else rng.randint(1, n_cell)
            idxs = sorted(rng.sample(range(3 * n_cell), count))  # gaps in idx
            n_classes = rng.randint(1, 4)
            for i in idxs:
                cls = rng.randint(-1, n_classes - 1)
                # dyadic scores: sums are exact whatever the order, so ties are real ties
                score = (rng.randint(low, 8) / 8 if rng.random() > 0.1 else None) if scored else None
                rows.append((f"c{c}", f"p{p}", i, cls, cls == 0, score))
    rows_shuffled = rows[:]
    rng.shuffle(rows_shuffled)
    return frame(rows_shuffled)


@pytest.mark.parametrize("low", [0, -4], ids=["scores-0-1", "negative-scores"])
@pytest.mark.parametrize("seed", range(5))
def test_vectorised_selection_agrees_with_ttscale_selection(seed, low):
    rng = random.Random(seed)
    candidates = _random_cells(rng, low=low)
    v = select_verdicts(candidates)
    by_problem = candidates.sort("idx").partition_by("cell_id", "problem_id", as_dict=True)
    checked = 0
    for (cell, problem), group in by_problem.items():
        n_cell = candidates.filter(pl.col("cell_id") == cell).group_by("problem_id").len()["len"].max()
        scored = candidates.filter(pl.col("cell_id") == cell)["score"].is_not_null().any()
        classes, scores = group["answer_class"].to_list(), group["score"].to_list()
        idxs, correct = group["idx"].to_list(), group["correct"].to_list()
        for n in budgets(n_cell):
            for method in ("naive", "weighted", "majority"):
                rows = v.filter(
                    (pl.col("cell_id") == cell) & (pl.col("problem_id") == problem) & (pl.col("n") == n) & (pl.col("method") == method)
                )
                if method != "majority" and not scored:
                    assert rows.height == 0
                    continue
                pick = select(classes[:n], scores[:n], method)
                got = rows.row(0, named=True)
                assert got["idx"] == idxs[pick], (cell, problem, n, method)
                expected = correct[pick] and (method == "naive" or classes[pick] >= 0)
                assert got["correct"] == float(expected)
                checked += 1
    assert checked > 100


def test_pass_rows_use_every_sample_of_the_problem():
    rows = [("a", "p", i, 0 if i < 3 else 1, i < 3, 0.5) for i in range(8)]
    v = select_verdicts(frame(rows))
    for n in (1, 2, 4, 8):
        assert verdict(v, "a", "p", n, "pass")["correct"] == pytest.approx(pass_at_k(8, 3, n))


def test_bootstrap_is_seeded_and_independent_of_row_order():
    rng = random.Random(7)
    candidates = _random_cells(rng, n_cells=3, n_problems=6)
    a = problem_verdicts(candidates, mode="bootstrap", n_draws=5, seed=1)
    b = problem_verdicts(candidates.sample(fraction=1.0, shuffle=True, seed=3), mode="bootstrap", n_draws=5, seed=1)
    c = problem_verdicts(candidates, mode="bootstrap", n_draws=5, seed=2)
    assert a.per_problem.equals(b.per_problem)
    assert a.per_draw.equals(b.per_draw)
    assert not a.per_problem.equals(c.per_problem)
    assert a.n_draws == 5
    assert a.per_problem["idx"].null_count() == a.per_problem.height


def test_bootstrap_at_full_budget_equals_prefix_when_nothing_ties():
    # distinct scores and distinct class counts: the full set has one answer whatever the order
    rows = []
    for p in range(5):
        classes = [0, 0, 0, 1, 1, 2, 0, 1]
        for i, cls in enumerate(classes):
            rows.append(("a", f"p{p}", i, cls, cls == p % 2, (i + 1) / 16 + p / 256))
    candidates = frame(rows)
    prefix = select_verdicts(candidates).filter(pl.col("n") == 8).drop("idx")
    boot = problem_verdicts(candidates, mode="bootstrap", n_draws=7, seed=0).per_problem.filter(pl.col("n") == 8).drop("idx")
    assert boot.equals(prefix)


def test_bootstrap_naive_converges_to_its_exact_expectation():
    # N=6 distinct scores, candidates at score ranks 0 and 3 correct. P(rank r is the best of a
    # random n-subset) = C(N-1-r, n-1) / C(N, n).
    n_total, right = 6, {0, 3}
    rows = []
    for p in range(60):
        for i in range(n_total):
            rank = (i * 5 + p) % n_total  # shuffle positions per problem
            rows.append(("a", f"p{p}", i, i, rank in right, 1.0 - rank / 8))
    v = problem_verdicts(frame(rows), mode="bootstrap", n_draws=120, seed=0)
    acc = v.per_problem.filter(pl.col("method") == "naive").group_by("n").agg(pl.col("correct").mean())
    for n in (1, 2, 4):
        exact = sum(math.comb(n_total - 1 - r, n - 1) for r in right) / math.comb(n_total, n)
        got = acc.filter(pl.col("n") == n)["correct"][0]
        assert got == pytest.approx(exact, abs=0.03), n
    # and the per-draw accuracies vary (it is a real resampling), except at n = N
    spread = v.per_draw.filter(pl.col("method") == "naive").group_by("n").agg(pl.col("accuracy").std())
    assert spread.filter(pl.col("n") == 2)["accuracy"][0] > 0
    assert spread.filter(pl.col("n") == 6)["accuracy"][0] == 0


def test_missing_column_is_a_data_error():
    from ttscale.errors import DataError

    with pytest.raises(DataError, match="candidates: missing column"):
        select_verdicts(frame(HAND).drop("answer_class"))


def test_input_row_order_does_not_change_the_result():
    rng = random.Random(11)
    shuffled = _random_cells(rng, n_cells=4, n_problems=5)
    ordered = shuffled.sort("cell_id", "problem_id", "idx")  # as the store returns them: contiguous groups
    reversed_groups = shuffled.sort("cell_id", "problem_id", "idx", descending=[True, True, False])
    expected = select_verdicts(shuffled)
    assert select_verdicts(ordered).equals(expected)
    assert select_verdicts(reversed_groups).equals(expected)
    boot = problem_verdicts(shuffled, mode="bootstrap", n_draws=3).per_problem
    assert problem_verdicts(reversed_groups, mode="bootstrap", n_draws=3).per_problem.equals(boot)

