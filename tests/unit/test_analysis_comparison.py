"""Models compared at matched FLOPs, on synthetic cells whose FLOPs and accuracies are known."""

from __future__ import annotations

import polars as pl
import pytest

from ttscale.analysis.comparison import compare_models, model_frontiers
from ttscale.analysis.cells import describe_cells
from ttscale.analysis.frontier import frontier_points
from ttscale.analysis.verdicts import select_verdicts

# Small model, N=16: the one correct candidate (score 0.9) of problem p sits at this position;
# every other candidate is wrong (score 0.1, a class of its own). So naive/weighted accuracy
# at n counts the problems whose position < n: n=1 → 3/10, 2 → 4, 4 → 5, 8 → 7, 16 → 8.
POSITION = {0: 0, 1: 0, 2: 0, 3: 1, 4: 2, 5: 5, 6: 5, 7: 12}
SMALL_FLOPS = 1600  # per problem at N=16: 100 per sample
LARGE_FLOPS = 8000  # per problem, one greedy answer


def _frames(large_right: int):
    cells = pl.DataFrame(
        [
            {"cell_id": "small", "model": "1b", "dataset": "d", "strategy": "best_of_n", "n": 16, "seed": 0},
            {"cell_id": "large", "model": "8b", "dataset": "d", "strategy": "majority", "n": 1, "seed": 0},
        ]
    )
    rows, runs = [], []
    for p in range(10):
        pid = f"p{p}"
        for i in range(16):
            right = POSITION.get(p) == i
            rows.append(("small", pid, i, 0 if right else i + 1, right, 0.9 if right else 0.1))
        rows.append(("large", pid, 0, 0, p < large_right, None))
        runs.append({"cell_id": "small", "problem_id": pid, "policy_flops": SMALL_FLOPS - 600, "verifier_flops": 600})
        runs.append({"cell_id": "large", "problem_id": pid, "policy_flops": LARGE_FLOPS, "verifier_flops": 0})
    cands = pl.DataFrame(rows, schema=["cell_id", "problem_id", "idx", "answer_class", "correct", "score"], orient="row")
    points = frontier_points(select_verdicts(cands), describe_cells(cells), pl.DataFrame(runs))
    return model_frontiers(points)


def test_frontier_is_the_upper_envelope_of_accuracy_vs_flops():
    fr = _frames(large_right=6)
    small = fr.filter((pl.col("model") == "1b") & (pl.col("method") == "naive")).sort("n")
    assert small["flops_per_problem"].to_list() == pytest.approx([100, 200, 400, 800, 1600])
    assert small["accuracy"].to_list() == pytest.approx([0.3, 0.4, 0.5, 0.7, 0.8])
    on = fr.filter((pl.col("model") == "1b") & pl.col("on_frontier")).sort("flops_per_problem")
    # majority never beats 0.3 (all wrong answers differ, ties go to the first candidate) and
    # weighted equals naive here: the envelope has one point per n, the first option by name
    assert on["accuracy"].to_list() == pytest.approx([0.3, 0.4, 0.5, 0.7, 0.8])
    assert on["option"].to_list() == ["best_of_n:majority", "best_of_n:naive", "best_of_n:naive", "best_of_n:naive", "best_of_n:naive"]
    env = fr.filter(pl.col("model") == "1b").sort("flops_per_problem")["envelope_accuracy"].to_list()
    assert env == sorted(env)


def test_small_model_with_search_overtakes_large_greedy():
    row = compare_models(_frames(large_right=6)).row(0, named=True)
    assert (row["small_model"], row["large_model"]) == ("1b", "8b")
    assert row["reference_option"] == "majority:majority" and row["reference_n"] == 1
    assert row["reference_flops"] == LARGE_FLOPS and row["reference_accuracy"] == pytest.approx(0.6)
    # 0.7 at n=8 is the cheapest small point above 0.6: 800 FLOPs, a tenth of the large model's
    assert row["beats_reference_n"] == 8
    assert row["beats_reference_flops"] == pytest.approx(800)
    assert row["flops_ratio"] == pytest.approx(0.1)
    # at matched compute (8000 FLOPs) the small model's envelope reads 0.8 at n=16
    assert row["overtakes_at_flops"] == pytest.approx(LARGE_FLOPS)
    assert row["overtakes_n"] == 16 and row["overtakes_accuracy"] == pytest.approx(0.8)
    assert row["large_accuracy_there"] == pytest.approx(0.6)


def test_no_overtaking_when_the_large_model_is_better_everywhere():
    row = compare_models(_frames(large_right=9)).row(0, named=True)
    assert row["beats_reference_option"] is None
    assert row["flops_ratio"] is None
    assert row["overtakes_at_flops"] is None
    assert row["small_best_accuracy"] == pytest.approx(0.8)
    assert row["large_best_accuracy"] == pytest.approx(0.9)


def test_explicit_pairs_and_unknown_models():
    fr = _frames(large_right=6)
    assert compare_models(fr, pairs=[("8b", "1b")]).row(0, named=True)["small_model"] == "8b"
    assert compare_models(fr, pairs=[("1b", "70b")]).height == 0
