"""Step-score aggregation: how a solution's per-step verifier scores become one score.

`last` is the reference's default (search-and-learn `aggregate_scores`); `min` and `prod`
penalise any weak step. For scores in [0, 1]: prod ≤ min ≤ last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.errors import SpecError

AGGREGATIONS = ("last", "min", "prod")


def aggregate(scores: Sequence[float], how: str) -> float | None:
    """One score for a solution from its step scores; None when there are no scores."""
    if how not in AGGREGATIONS:
        raise SpecError(f"aggregation: unknown {how!r}; allowed: {', '.join(AGGREGATIONS)}")
    if not scores:
        return None
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    return float(math.prod(scores))
