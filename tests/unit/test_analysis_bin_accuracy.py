"""`analysis.bin_accuracy`: the frontier points averaged within each difficulty bin."""

from __future__ import annotations

import polars as pl
import pytest

from ttscale.analysis.bin_accuracy import BIN_ACCURACY_COLUMNS, bin_accuracy


def test_accuracy_is_the_mean_over_the_bins_problems_only():
    points = pl.DataFrame({
        "model": "m", "dataset": "d", "config": "best_of_n", "method": "weighted", "option": "best_of_n:weighted",
        "n": [4, 4, 4, 4], "flops_per_problem": 10.0, "problem_id": ["a", "b", "c", "z"], "correct": [1.0, 0.5, 0.0, 1.0],
    })  # fmt: skip
    bins = pl.DataFrame({"model": "m", "dataset": "d", "problem_id": ["a", "b", "c"], "difficulty": [0.9, 0.8, 0.1], "bin": [1, 1, 2]})
    out = bin_accuracy(points, bins)
    assert out.columns == list(BIN_ACCURACY_COLUMNS)
    got = {r["bin"]: (r["accuracy"], r["n_problems"]) for r in out.iter_rows(named=True)}
    assert got[1] == (pytest.approx(0.75), 2) and got[2] == (0.0, 1)  # `z` has no bin: left out
