"""Unbiased pass@k from N samples of which c are correct (Chen et al. 2021, arXiv 2107.03374, eq. 1).

    pass@k = 1 - C(N - c, k) / C(N, k)

the probability that at least one of k samples drawn without replacement from the N is
correct. It is exact (integer binomials, one correctly rounded division), never falls as k
grows, equals c/N at k=1 and 1[c > 0] at k=N. For k > N the estimate is taken at k = N.
"""

from __future__ import annotations

import math

import polars as pl


def pass_at_k(n_total: int, n_correct: int, k: int) -> float:
    """Unbiased pass@k; `k` is capped at `n_total`. 0 samples give 0."""
    if not 0 <= n_correct <= n_total:
        raise ValueError(f"n_correct must be within 0..{n_total}, got {n_correct}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_total == 0:
        return 0.0
    k = min(k, n_total)
    if n_total - n_correct < k:
        return 1.0
    return 1.0 - math.comb(n_total - n_correct, k) / math.comb(n_total, k)


def with_pass_at_k(
    frame: pl.DataFrame,
    *,
    total: str = "n_total",
    correct: str = "n_correct",
    k: str = "k",
    out: str = "pass_at_k",
) -> pl.DataFrame:
    """Add column `out` = pass@k for every row of `frame`.

    The estimator is evaluated once per distinct (total, correct, k) triple — at most
    N·|k| of them however many problems there are — and joined back, so the exact integer
    formula costs nothing in the vectorised path.
    """
    triples = frame.select(total, correct, k).unique()
    values = [
        pass_at_k(int(t), int(c), int(kk))
        for t, c, kk in zip(triples[total].to_list(), triples[correct].to_list(), triples[k].to_list(), strict=True)
    ]
    table = triples.with_columns(pl.Series(out, values, dtype=pl.Float64))
    return frame.join(table, on=[total, correct, k], how="left", nulls_equal=True)
