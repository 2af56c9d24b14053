"""Compute-optimal frontier, two-fold: choose on one half, evaluate on the other."""

from __future__ import annotations

import polars as pl
import pytest

from ttscale.analysis.cells import describe_cells
from ttscale.analysis.frontier import assign_folds, compute_optimal, flops_grid, frontier_points
from ttscale.analysis.verdicts import select_verdicts

PIDS = [f"p{i}" for i in range(60)]


def test_folds_are_stable_seeded_and_balanced():
    a = assign_folds(PIDS, seed=0)
    assert a.equals(assign_folds(list(reversed(PIDS)), seed=0))
    # a problem's fold does not depend on which other problems are present
    sub = assign_folds(PIDS[:10], seed=0)
    assert sub.equals(a.filter(pl.col("problem_id").is_in(PIDS[:10])))
    assert not a.equals(assign_folds(PIDS, seed=1))
    big = assign_folds([f"q{i}" for i in range(2000)], seed=0)
    assert 900 < big["fold"].sum() < 1100


def _points(correct_of, options=("X", "Y"), flops=None, n=4, bins_of=lambda i: 1):
    """points for every problem and option; correct_of(problem index, fold, option) -> 0/1."""
    folds = dict(assign_folds(PIDS, 0).iter_rows())
    rows = []
    for i, pid in enumerate(PIDS):
        for opt in options:
            rows.append({"model": "m", "dataset": "d", "config": opt, "method": "majority", "option": f"{opt}:majority",
                         "n": n, "flops_per_problem": (flops or {}).get(opt), "problem_id": pid,
                         "correct": float(correct_of(i, folds[pid], opt))})  # fmt: skip
    points = pl.DataFrame(rows, schema_overrides={"flops_per_problem": pl.Float64})
    bins = pl.DataFrame({"model": "m", "dataset": "d", "problem_id": PIDS, "difficulty": 0.0,
                         "bin": [bins_of(i) for i in range(len(PIDS))]})  # fmt: skip
    return points, bins


def test_choice_never_uses_the_evaluated_half():
    # X is perfect on fold 0 and useless on fold 1; Y the reverse. Choosing on the evaluated
    # half would score 100%; cross-fitting picks X on fold 0, evaluates it on fold 1: 0%.
    points, bins = _points(lambda i, fold, opt: (fold == 0) == (opt == "X"))
    out = compute_optimal(points, bins)
    row = out.filter(pl.col("bin") == "1").row(0, named=True)
    assert row["optimal_chosen_on_0"] == "X:majority"
    assert row["optimal_chosen_on_1"] == "Y:majority"
    assert row["optimal_accuracy"] == 0.0
    assert row["single_chosen_on_0"] == "X:majority" and row["single_chosen_on_1"] == "Y:majority"
    assert row["single_accuracy"] == 0.0
    assert row["n_problems"] == len(PIDS)
    flops = compute_optimal(points.with_columns(pl.lit(1.0).alias("flops_per_problem")), bins, budget="flops")
    assert flops.filter(pl.col("bin") == "all")["optimal_accuracy"].to_list() == [0.0]


def test_per_bin_choice_beats_the_best_single_option():
    # bin 1: X right, Y wrong; bin 2: the reverse — on both folds. Best single gets one bin.
    bins_of = lambda i: 1 + i % 2  # noqa: E731
    points, bins = _points(lambda i, fold, opt: (bins_of(i) == 1) == (opt == "X"), bins_of=bins_of)
    out = compute_optimal(points, bins)
    overall = out.filter(pl.col("bin") == "all").row(0, named=True)
    assert overall["optimal_accuracy"] == 1.0
    # the single option chosen on fold f is the one right on more of fold f's problems
    folds = dict(assign_folds(PIDS, 0).iter_rows())
    in_bin1 = {f: sum(1 for i, p in enumerate(PIDS) if folds[p] == f and bins_of(i) == 1) for f in (0, 1)}
    size = {f: sum(1 for p in PIDS if folds[p] == f) for f in (0, 1)}
    pick = {f: "X" if in_bin1[f] >= size[f] - in_bin1[f] else "Y" for f in (0, 1)}
    hits = sum(in_bin1[1 - f] if pick[f] == "X" else size[1 - f] - in_bin1[1 - f] for f in (0, 1))
    assert overall["single_accuracy"] == pytest.approx(hits / len(PIDS))
    assert overall["single_accuracy"] < 0.6
    assert overall["gain"] == pytest.approx(1.0 - hits / len(PIDS))
    by_bin = {r["bin"]: r for r in out.iter_rows(named=True)}
    assert by_bin["1"]["optimal_chosen_on_0"] == "X:majority"
    assert by_bin["2"]["optimal_chosen_on_0"] == "Y:majority"
    assert by_bin["1"]["optimal_accuracy"] == by_bin["2"]["optimal_accuracy"] == 1.0


def test_ties_go_to_fewer_flops():
    points, bins = _points(lambda i, fold, opt: 1, flops={"X": 5.0, "Y": 3.0})
    row = compute_optimal(points, bins).filter(pl.col("bin") == "all").row(0, named=True)
    assert row["single_chosen_on_0"] == "Y:majority"
    assert row["optimal_flops"] == 3.0


def test_flops_budget_lets_cheaper_budgets_compete():
    # X at n=1 costs 1 FLOP and is right on half the problems; X at n=4 costs 4 and is always right.
    cheap, _ = _points(lambda i, fold, opt: i % 2, options=("X",), flops={"X": 1.0}, n=1)
    dear, bins = _points(lambda i, fold, opt: 1, options=("X",), flops={"X": 4.0}, n=4)
    out = compute_optimal(pl.concat([cheap, dear]), bins, budget="flops").filter(pl.col("bin") == "all")
    assert out["budget"].to_list() == [1.0, 2.0, 4.0]
    assert out["optimal_accuracy"].to_list() == [0.5, 0.5, 1.0]
    assert out["optimal_chosen_on_0"].to_list() == [None, None, None]  # per-bin choices are listed per bin
    assert out["single_chosen_on_0"].to_list() == ["X:majority@1", "X:majority@1", "X:majority@4"]


def test_flops_grid_doubles_from_the_cheapest():
    grid = flops_grid(pl.DataFrame({"model": "m", "dataset": "d", "flops": [3.0, 5.0, 20.0]}))
    assert grid["budget"].to_list() == [3.0, 6.0, 12.0, 20.0]


def test_points_keep_only_budgets_that_are_real_runs_and_scale_flops():
    cells = pl.DataFrame(
        [
            {"cell_id": "bon0", "model": "m", "dataset": "d", "strategy": "best_of_n", "n": 4, "seed": 0},
            {"cell_id": "bon1", "model": "m", "dataset": "d", "strategy": "best_of_n", "n": 4, "seed": 1},
            {"cell_id": "beam", "model": "m", "dataset": "d", "strategy": "beam_search", "n": 4, "seed": 0},
        ]
    )
    rows = []
    for cid in ("bon0", "bon1", "beam"):
        for i in range(4):
            right = cid == "bon0" or (cid == "bon1" and i >= 1) or cid == "beam"
            rows.append((cid, "p0", i, 0 if right else 1, right, 0.5))
    cands = pl.DataFrame(rows, schema=["cell_id", "problem_id", "idx", "answer_class", "correct", "score"], orient="row")
    runs = pl.DataFrame({"cell_id": ["bon0", "bon1", "beam"], "problem_id": "p0",
                         "policy_flops": [800, 1200, 4000], "verifier_flops": [200, 200, 1000]})  # fmt: skip
    points = frontier_points(select_verdicts(cands), describe_cells(cells), runs)
    beam = points.filter(pl.col("config") == "beam_search")
    assert beam["n"].unique().to_list() == [4]  # the first 1 or 2 of a beam search are not a run
    bon = points.filter((pl.col("config") == "best_of_n") & (pl.col("method") == "majority")).sort("n")
    assert bon["n"].to_list() == [1, 2, 4]
    # seeds pooled: at n=1 seed 0 right, seed 1 wrong → 0.5
    assert bon["correct"].to_list() == [0.5, 0.5, 1.0]
    # FLOPs: mean over seeds of (policy + verifier) = 1200 at N=4, scaled by n/N
    assert bon["flops_per_problem"].to_list() == pytest.approx([300.0, 600.0, 1200.0])
    assert beam["flops_per_problem"].unique().to_list() == [5000.0]
    assert set(points["option"].to_list()) >= {"best_of_n:naive", "best_of_n:weighted", "beam_search:majority"}
    assert "pass" not in points["method"].to_list()
