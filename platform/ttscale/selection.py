"""Choosing one answer among a problem's candidates (search-and-learn `utils/score.py` methods).

- `naive`: the candidate with the highest aggregated score.
- `weighted`: the answer class with the largest sum of scores ("weighted Best-of-N", Li et al. 2023).
- `majority`: the most frequent answer class (self-consistency, Wang et al. 2023).
Ties go to the first occurrence, as in the reference. Unparsed answers (class -1) never win
unless nothing parsed. Candidates without scores count 1 for weighted (it becomes majority).
"""

from __future__ import annotations

from collections.abc import Sequence

METHODS = ("naive", "weighted", "majority")


def select(classes: Sequence[int], scores: Sequence[float | None], method: str) -> int | None:
    """Index of the chosen candidate, or None when there are no candidates."""
    if not classes:
        return None
    if method == "naive":
        best, best_score = 0, None
        for i, s in enumerate(scores):
            value = -1.0 if s is None else s
            if best_score is None or value > best_score:
                best, best_score = i, value
        return best
    if method not in ("weighted", "majority"):
        raise ValueError(f"unknown selection method {method!r}")
    totals: dict[int, float] = {}
    first: dict[int, int] = {}
    for i, (c, s) in enumerate(zip(classes, scores, strict=True)):
        if c < 0:
            continue
        weight = 1.0 if method == "majority" or s is None else s
        totals[c] = totals.get(c, 0.0) + weight
        first.setdefault(c, i)
    if not totals:
        return 0
    winner = max(totals, key=lambda c: (totals[c], -first[c]))
    return first[winner]
