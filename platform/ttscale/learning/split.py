"""Train / validation / test by a stable hash of the problem id.

A problem's split is a pure function of its id (and an optional salt): sha256 of the id, its
first 8 bytes read as a fraction of 2^64, placed among the cumulative fractions. It does not
depend on which other problems are present, so a problem keeps its split as the store grows,
every step of one problem lands in one split, and no problem's steps are both trained and
validated on. (Two problem ids with the same text — e.g. `What is 7 + 5?` drawn twice by a
generator — may land apart; the dataset card counts such texts.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
"""Shares of problems in train, validation and test (validation picks the head; test is untouched)."""


def check_fractions(fractions: Sequence[float]) -> str | None:
    """An error message unless `fractions` are three non-negative shares summing to 1 with a
    non-empty train share; None when they are fine."""
    if len(fractions) != len(SPLITS):
        return f"give {len(SPLITS)} fractions (train, validation, test), got {len(fractions)}"
    if any(f < 0 for f in fractions) or fractions[0] <= 0:
        return f"fractions must be >= 0 with train > 0, got {list(fractions)}"
    if abs(sum(fractions) - 1.0) > 1e-6:
        return f"fractions must sum to 1, got {sum(fractions):g}"
    return None


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) for `key`: the first 8 bytes of its sha256 over 2^64."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(problem_id: str, fractions: Sequence[float] = DEFAULT_FRACTIONS, salt: str = "") -> str:
    """The split (`train`, `validation` or `test`) of one problem."""
    assert check_fractions(fractions) is None, check_fractions(fractions)
    x = hash_fraction(salt + problem_id)
    edge = 0.0
    for name, share in zip(SPLITS, fractions, strict=True):
        edge += share
        if x < edge:
            return name
    return SPLITS[-1]  # x within rounding of 1.0
