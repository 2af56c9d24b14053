"""The dashboard's pure helpers (`dashboard/views.py`): progress and ETA, the tree layout and
path, the rows a frontier draws, and captions worded from the analysis's frames."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dashboard"))

import views  # noqa: E402

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _cells(rows: list[dict]) -> pl.DataFrame:
    base = {"model": "m", "verifier": None, "strategy": "best_of_n", "n": 4, "dataset": "d", "seed": 0,
            "source_cell_id": None, "finished_at": None, "status": "running", "n_problems": 20}  # fmt: skip
    return pl.DataFrame([{**base, **r} for r in rows], schema_overrides={"finished_at": pl.Datetime("us", "UTC"), "started_at": pl.Datetime("us", "UTC")})


def test_running_sweep_eta_extrapolates_the_rate_so_far():
    start = NOW - timedelta(seconds=60)
    cells = _cells([
        {"cell_id": "a", "n_problems_done": 10, "started_at": start},
        {"cell_id": "b", "n_problems_done": 0, "started_at": None, "status": "pending"},
        {"cell_id": "c", "n_problems_done": 0, "started_at": None, "source_cell_id": "a", "n": 2},
    ])  # fmt: skip
    progress = views.cell_progress(cells, NOW)
    assert progress.filter(pl.col("cell_id") == "c")["n_problems_done"][0] == 10  # served: counts its source's
    sweeps = pl.DataFrame({"sweep_id": ["s"], "status": ["running"]})
    members = pl.DataFrame({"sweep_id": ["s"] * 3, "cell_id": ["a", "b", "c"]})
    row = views.sweep_progress(sweeps, progress, members, NOW).row(0, named=True)
    assert (row["problems_done"], row["problems_expected"]) == (10, 40)  # the served cell is not counted twice
    assert row["progress"] == pytest.approx(0.25)
    assert row["eta_s"] == pytest.approx(30 * 60 / 10)  # 30 left at 10 per minute
    done = views.sweep_progress(sweeps.with_columns(pl.lit("done").alias("status")), progress, members, NOW)
    assert done["eta_s"][0] is None


def test_tree_layout_places_parents_between_children_and_marks_the_path():
    nodes = pl.DataFrame({
        "node_id": [0, 1, 2, 3, 4], "parent_id": [None, 0, 0, 1, None], "depth": [0, 1, 1, 2, 0],
        "scores": [[0.5], [0.2, 0.9], [0.1], [0.7], [0.3]], "selected": [True, True, False, True, False],
        "pruned": [False, False, True, False, True], "kind": ["step"] * 5, "text": ["t"] * 5,
        "n_generated_tokens": [1] * 5, "finish_reason": ["step"] * 5,
    })  # fmt: skip
    path = views.path_to(nodes, 3)
    assert path == [0, 1, 3]
    points, edges = views.tree_layout(nodes, path)
    y = dict(zip(points["node_id"].to_list(), points["y"].to_list(), strict=True))
    assert y[3] == y[1] and y[0] == (y[1] + y[2]) / 2 and y[4] > y[2]
    assert dict(zip(points["node_id"].to_list(), points["score"].to_list(), strict=True))[1] == 0.9  # last step score
    assert points.filter(pl.col("on_path"))["node_id"].to_list() == [0, 1, 3]
    assert points.filter(pl.col("node_id") == 2)["state"][0] == "pruned"
    assert edges.height == 3 and edges["on_path"].sum() == 2


def test_accuracy_lines_keep_only_budgets_that_were_run():
    acc = pl.DataFrame({
        "model": "m", "dataset": "d", "strategy": ["beam_search", "beam_search", "best_of_n", "best_of_n", "best_of_n"],
        "config": ["beam_search", "beam_search", "best_of_n", "best_of_n", "best_of_n"], "n_cell": [4, 4, 4, 2, 4],
        "prefix_unit": [None, None, 1, 1, 1],
        "n": [2, 4, 2, 2, 4], "method": "weighted", "accuracy": [0.9, 0.5, 0.3, 0.4, 0.6],
        "ci_low": None, "ci_high": None, "std": None, "n_seeds": 1,
    })  # fmt: skip
    lines = views.accuracy_lines(acc)
    got = {(r["config"], r["n"]): r["accuracy"] for r in lines.iter_rows(named=True)}
    # beam search cut to 2 of its 4 candidates is not a beam search at n=2; at n=2 Best-of-N's own cell wins
    assert got == {("beam_search", 4): 0.5, ("best_of_n", 2): 0.4, ("best_of_n", 4): 0.6}
    assert set(lines["option"].to_list()) == {"beam_search:weighted", "best_of_n:weighted"}


def test_comparison_caption_names_budget_models_and_crossover():
    row = {
        "dataset": "math500", "small_model": "1b", "large_model": "8b", "reference_option": "best_of_n:naive",
        "reference_n": 1, "reference_flops": 1e12, "reference_accuracy": 0.40, "beats_reference_option": "beam_search:weighted",
        "beats_reference_n": 16, "beats_reference_flops": 2e12, "beats_reference_accuracy": 0.45, "flops_ratio": 2.0,
        "overtakes_at_flops": 3e12, "overtakes_option": "beam_search:weighted", "overtakes_n": 16, "overtakes_accuracy": 0.45,
        "large_accuracy_there": 0.41, "ahead_until_flops": None, "small_best_accuracy": 0.5, "large_best_accuracy": 0.6,
    }  # fmt: skip
    [text] = views.comparison_captions(pl.DataFrame([row]))
    assert text == (
        "math500: At 16 generations, beam_search (weighted selection) with 1b reaches 45%, above 8b answering once (40%), "
        "at 2.00× its FLOPs. At matched compute 1b is ahead from 3e+12 FLOPs per problem (45% vs 41%)."
    )
    never = views.comparison_captions(pl.DataFrame([{**row, "beats_reference_option": None, "overtakes_at_flops": None}]))
    assert never == ["math500: 1b never beats 8b answering once (40%): its best is 50%."]


def _frontier() -> pl.DataFrame:
    return pl.DataFrame({
        "model": "m", "dataset": "d", "bin": ["1", "all"], "budget": [4, 4], "n_problems": [5, 10],
        "optimal_accuracy": [0.6, 0.5], "optimal_ci_low": [0.231, 0.3], "optimal_ci_high": [0.882, 0.7],
        "single_accuracy": [0.4, 0.45], "single_ci_low": [0.1, 0.25], "single_ci_high": [0.8, 0.66],
        "gain": [0.2, 0.05], "gain_ci_low": [-0.062, None], "gain_ci_high": [0.328, None],
        "optimal_flops": [1.0, 1.0], "single_flops": [1.0, 1.0],
        "optimal_chosen_on_0": ["a:weighted", None], "optimal_chosen_on_1": ["b:naive", None],
        "single_chosen_on_0": ["a:weighted", "a:weighted"], "single_chosen_on_1": ["a:weighted", "a:weighted"],
    })  # fmt: skip


def test_optimal_table_shows_both_folds_choices_only_when_they_differ():
    table = views.optimal_table(_frontier())
    assert table["best strategy (fold 0 | fold 1)"].to_list() == ["a:weighted | b:naive", "(per bin)"]
    assert table["best single strategy"].to_list() == ["a:weighted", "a:weighted"]


def test_optimal_table_shows_each_accuracy_and_the_gain_with_its_interval():
    table = views.optimal_table(_frontier())
    row = table.row(0, named=True)
    assert row["best accuracy"] == 0.6 and row["best 95% CI (%)"] == "[23.1, 88.2]"
    assert row["single accuracy"] == 0.4 and row["single 95% CI (%)"] == "[10.0, 80.0]"
    assert row["gain (points)"] == pytest.approx(20.0) and row["gain 95% CI (points)"] == "[-6.2, +32.8]"
    assert table.row(1, named=True)["gain 95% CI (points)"] == "–"  # no interval: said, not invented
    columns = table.columns
    assert columns.index("best 95% CI (%)") == columns.index("best accuracy") + 1
    assert columns.index("gain 95% CI (points)") == columns.index("gain (points)") + 1


def test_optimal_caption_gives_the_gain_with_its_interval():
    frontier = _frontier().with_columns(pl.Series("gain_ci_low", [-0.062, -0.01]), pl.Series("gain_ci_high", [0.328, 0.11]))
    [text] = views.optimal_captions(frontier)
    assert text.startswith("m on d: choosing the strategy per difficulty bin gains +5.0 points [-1.0, +11.0] over the best single")


def test_run_links_need_a_server_and_point_at_the_run():
    import links

    assert links.mlflow_run("http://mlflow:5000/", "abc") == "http://mlflow:5000/#/runs/abc"
    assert links.mlflow_run("sqlite:////x/mlflow.db", "abc") is None
    assert links.mlflow_run("http://mlflow:5000", None) is None
    assert links.prefect_flow_run("http://prefect:4200/api", "f-1") == "http://prefect:4200/runs/flow-run/f-1"
    assert links.prefect_flow_run(None, "f-1") is None
