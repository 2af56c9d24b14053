from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ttscale.selection import select


def test_naive_takes_highest_score_first_on_ties():
    assert select([0, 1, 2], [0.2, 0.9, 0.9], "naive") == 1


def test_weighted_sums_scores_per_class():
    # class 0: 0.4 + 0.4 = 0.8 beats class 1's single 0.7
    assert select([1, 0, 0], [0.7, 0.4, 0.4], "weighted") == 1


def test_majority_counts_classes_and_ties_go_to_first_occurrence():
    assert select([2, 1, 1, 2], [None] * 4, "majority") == 0
    assert select([2, 1, 1], [0.9, 0.1, 0.1], "majority") == 1


def test_unparsed_answers_never_win_unless_nothing_parsed():
    assert select([-1, -1, 3], [0.9, 0.9, 0.1], "majority") == 2
    assert select([-1, -1, 3], [0.9, 0.9, 0.1], "weighted") == 2
    assert select([-1, -1], [0.1, 0.2], "majority") == 0


@given(st.lists(st.tuples(st.integers(0, 4), st.floats(0, 1)), min_size=1, max_size=20), st.randoms())
def test_majority_vote_ignores_candidate_order(rows, rnd):
    classes = [c for c, _ in rows]
    counts = {c: classes.count(c) for c in classes}
    top = max(counts.values())
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    pick = select([c for c, _ in shuffled], [s for _, s in shuffled], "majority")
    assert counts[shuffled[pick][0]] == top
