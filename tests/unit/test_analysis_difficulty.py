"""Difficulty bins: oracle, predicted and level (Snell et al. 2024)."""

from __future__ import annotations

import polars as pl
import pytest

from ttscale.analysis.cells import describe_cells
from ttscale.analysis.difficulty import difficulty_bins, quantile_bins, reference_cells
from ttscale.errors import SpecError


def test_quantile_bins_put_the_easiest_in_bin_1():
    scores = pl.DataFrame({"model": "m", "dataset": "d", "problem_id": [f"p{i}" for i in range(10)],
                           "difficulty": [i / 10 for i in range(10)]})  # fmt: skip
    out = quantile_bins(scores).sort("problem_id")
    bins = dict(zip(out["problem_id"], out["bin"]))
    assert [bins[f"p{i}"] for i in range(10)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_ties_share_a_bin():
    # 6 problems solved by nobody, 4 by everyone: ties never split across bins
    scores = pl.DataFrame({"model": "m", "dataset": "d", "problem_id": [f"p{i}" for i in range(10)],
                           "difficulty": [0.0] * 6 + [1.0] * 4})  # fmt: skip
    out = quantile_bins(scores)
    assert out.filter(pl.col("difficulty") == 1.0)["bin"].unique().to_list() == [1]
    assert out.filter(pl.col("difficulty") == 0.0)["bin"].unique().to_list() == [3]


def _sweep():
    """Two models; per model a best_of_n cell (N=4) and a beam_search cell (N=8)."""
    cells, cands = [], []
    for model in ("small", "large"):
        for strategy, n in (("best_of_n", 4), ("beam_search", 8)):
            cid = f"{model}-{strategy}"
            cells.append({"cell_id": cid, "model": model, "dataset": "d", "strategy": strategy, "n": n, "seed": 0,
                          "verifier": "prm", "aggregation": "last"})  # fmt: skip
            for p in range(5):
                for i in range(n):
                    # best_of_n: problem p solved by the first p of 4 samples; beam_search: all right
                    right = i < p if strategy == "best_of_n" else True
                    score = (4 - p) / 4 if model == "small" else p / 4  # predicted difficulty differs by model
                    cands.append((cid, f"p{p}", i, 0 if right else 1, right, score))
    cands_df = pl.DataFrame(cands, schema=["cell_id", "problem_id", "idx", "answer_class", "correct", "score"], orient="row")
    return describe_cells(pl.DataFrame(cells)), cands_df


def test_default_reference_is_the_largest_independent_sampling_cell():
    described, cands = _sweep()
    ref = reference_cells(described, cands)
    assert sorted(ref["cell_id"].to_list()) == ["large-best_of_n", "small-best_of_n"]


def test_oracle_bins_use_the_reference_pass_at_1():
    described, cands = _sweep()
    bins = difficulty_bins(cands, described, how="oracle")
    small = bins.filter(pl.col("model") == "small").sort("problem_id")
    # pass@1 of problem p is min(p, 4)/4: p4 easiest (bin 1), p0 hardest (bin 5)
    assert small["difficulty"].to_list() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert small["bin"].to_list() == [5, 4, 3, 2, 1]


def test_predicted_bins_use_mean_verifier_score_per_model():
    described, cands = _sweep()
    bins = difficulty_bins(cands, described, how="predicted")
    small = bins.filter(pl.col("model") == "small").sort("problem_id")["bin"].to_list()
    large = bins.filter(pl.col("model") == "large").sort("problem_id")["bin"].to_list()
    assert small == [1, 2, 3, 4, 5]
    assert large == [5, 4, 3, 2, 1]


def test_explicit_reference_overrides_the_default():
    described, cands = _sweep()
    bins = difficulty_bins(cands, described, how="oracle", reference=["small-beam_search"])
    assert bins["model"].unique().to_list() == ["small"]
    assert bins["bin"].unique().to_list() == [1]  # all solved: one tie, one bin
    with pytest.raises(SpecError, match="unknown cell id"):
        difficulty_bins(cands, described, reference=["nope"])


def test_level_bins_come_from_the_problems():
    described, cands = _sweep()
    problems = pl.DataFrame({"dataset": "d", "problem_id": [f"p{p}" for p in range(5)], "level": [3, 1, 5, 2, 4]})
    bins = difficulty_bins(cands, described, problems, how="level")
    assert bins.height == 10  # every problem, for each model
    large = bins.filter(pl.col("model") == "large").sort("problem_id")["bin"].to_list()
    assert large == [3, 1, 5, 2, 4]


def test_level_bins_without_levels_fail_in_one_line():
    described, cands = _sweep()
    problems = pl.DataFrame({"dataset": "d", "problem_id": ["p0"], "level": [None]}, schema_overrides={"level": pl.Int64})
    with pytest.raises(SpecError, match="needs problem levels"):
        difficulty_bins(cands, described, problems, how="level")
    with pytest.raises(SpecError, match="allowed: oracle, predicted, level"):
        difficulty_bins(cands, described, how="hardness")


def test_predicted_without_scores_fails():
    described, cands = _sweep()
    with pytest.raises(SpecError, match="verifier scores"):
        difficulty_bins(cands.with_columns(pl.lit(None, dtype=pl.Float64).alias("score")), described, how="predicted")
