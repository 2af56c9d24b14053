"""Accuracy at n per cell and across seeds, with intervals."""

from __future__ import annotations

import math

import polars as pl
import pytest

from ttscale.analysis.accuracy import cell_accuracy, seed_accuracy, t975
from ttscale.analysis.cells import describe_cells
from ttscale.analysis.verdicts import Verdicts, problem_verdicts
from ttscale.spec import CellSpec, DatasetSpec
from ttscale.strategy_params import BeamSearchParams, BestOfNParams


def cells_frame(specs: list[CellSpec]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "cell_id": s.cell_id,
                "model": s.model,
                "verifier": s.verifier,
                "aggregation": s.aggregation,
                "strategy": s.strategy.name,
                "n": s.n,
                "beam_width": getattr(s.strategy, "beam_width", None),
                "dataset": s.dataset.label,
                "seed": s.seed,
                "spec": s.canonical_json(),
            }
            for s in specs
        ]
    )


def bon(seed: int, n: int = 4) -> CellSpec:
    return CellSpec(model="m", verifier="prm", strategy=BestOfNParams(), n=n, dataset=DatasetSpec(name="math500"), seed=seed)


def test_cell_accuracy_is_the_mean_over_problems():
    # 4 problems, N=2: first candidate right on problems 0 and 1 only.
    rows = []
    for p in range(4):
        rows += [("c", f"p{p}", 0, 0, p < 2, 0.9), ("c", f"p{p}", 1, 1, p == 3, 0.1)]
    cands = pl.DataFrame(rows, schema=["cell_id", "problem_id", "idx", "answer_class", "correct", "score"], orient="row")
    acc = cell_accuracy(problem_verdicts(cands))
    naive1 = acc.filter((pl.col("n") == 1) & (pl.col("method") == "naive")).row(0, named=True)
    assert naive1["accuracy"] == 0.5
    assert naive1["n_problems"] == 4
    # one draw: the Wilson interval over the 4 problems, 2/4 -> [0.150, 0.850] (textbook value)
    assert naive1["n_draws"] == 1
    assert (naive1["ci_low"], naive1["ci_high"]) == (pytest.approx(0.1500, abs=5e-5), pytest.approx(0.8500, abs=5e-5))
    pass2 = acc.filter((pl.col("n") == 2) & (pl.col("method") == "pass")).row(0, named=True)
    assert pass2["accuracy"] == 0.75  # problems 0, 1, 3 have a correct sample


def test_bootstrap_interval_is_the_percentile_range_of_draws():
    per_problem = pl.DataFrame(
        {"cell_id": ["c"] * 2, "problem_id": ["p0", "p1"], "n": [2, 2], "method": ["naive"] * 2,
         "correct": [0.5, 0.25], "idx": [None, None]},
        schema_overrides={"idx": pl.Int64},
    )  # fmt: skip
    draws = pl.DataFrame(
        {"cell_id": ["c"] * 5, "n": [2] * 5, "method": ["naive"] * 5, "draw": list(range(5)),
         "accuracy": [0.0, 0.25, 0.5, 0.5, 0.625]}
    )  # fmt: skip
    acc = cell_accuracy(Verdicts(per_problem, draws, "bootstrap", 5)).row(0, named=True)
    assert acc["accuracy"] == 0.375
    values = sorted(draws["accuracy"].to_list())
    # linear interpolation at 2.5% / 97.5% of 5 sorted values
    assert acc["ci_low"] == pytest.approx(values[0] + 0.1 * (values[1] - values[0]))
    assert acc["ci_high"] == pytest.approx(values[3] + 0.9 * (values[4] - values[3]))
    assert acc["n_draws"] == 5


def test_seed_accuracy_is_mean_with_a_t_interval():
    specs = [bon(0), bon(1), bon(2)]
    described = describe_cells(cells_frame(specs))
    values = [0.5, 0.625, 0.75]
    cell_acc = pl.DataFrame(
        {
            "cell_id": [s.cell_id for s in specs],
            "n": [4] * 3,
            "method": ["majority"] * 3,
            "accuracy": values,
            "ci_low": [None] * 3,
            "ci_high": [None] * 3,
            "n_problems": [8] * 3,
            "n_draws": [1] * 3,
        },
        schema_overrides={"ci_low": pl.Float64, "ci_high": pl.Float64},
    )
    row = seed_accuracy(cell_acc, described).row(0, named=True)
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = t975(2) * sd / math.sqrt(3)
    assert row["accuracy"] == pytest.approx(0.625)
    assert row["std"] == pytest.approx(sd)
    assert row["ci_low"] == pytest.approx(mean - half)
    assert row["ci_high"] == pytest.approx(min(1.0, mean + half))
    assert row["n_seeds"] == 3
    assert row["config"] == "best_of_n"


def test_one_seed_keeps_the_cells_own_interval_and_intervals_stay_in_0_1():
    specs = [bon(0), bon(1)]
    described = describe_cells(cells_frame(specs))
    cell_acc = pl.DataFrame(
        {
            "cell_id": [specs[0].cell_id, specs[0].cell_id, specs[1].cell_id],
            "n": [1, 2, 2],
            "method": ["naive"] * 3,
            "accuracy": [0.4, 1.0, 0.9],
            "ci_low": [0.3, 1.0, 0.8],
            "ci_high": [0.5, 1.0, 1.0],
            "n_problems": [10] * 3,
            "n_draws": [16] * 3,
        }
    )
    # n=1 only seed 0 has a row → its bootstrap interval; n=2 two seeds → t-interval, clipped at 1
    out = seed_accuracy(cell_acc, described).sort("n")
    one, two = out.row(0, named=True), out.row(1, named=True)
    assert (one["n_seeds"], one["ci_low"], one["ci_high"]) == (1, 0.3, 0.5)
    assert two["n_seeds"] == 2 and two["ci_high"] == 1.0 and two["ci_low"] < 0.95


def test_t975_table():
    assert t975(1) == 12.706
    assert t975(4) == 2.776
    assert t975(100) == 1.96
    with pytest.raises(ValueError):
        t975(0)


def test_config_labels_name_only_what_varies():
    a = CellSpec(model="m", verifier="prm", strategy=BeamSearchParams(lookahead=0), n=4, dataset=DatasetSpec(name="d"))
    b = CellSpec(model="m", verifier="prm", strategy=BeamSearchParams(lookahead=2), n=4, dataset=DatasetSpec(name="d"))
    c = CellSpec(model="m", verifier="prm2", strategy=BestOfNParams(), n=4, dataset=DatasetSpec(name="d"))
    described = describe_cells(cells_frame([a, b, c]))
    labels = dict(zip(described["cell_id"], described["config"]))
    assert labels[a.cell_id] == "beam_search[lookahead=0]@prm"
    assert labels[b.cell_id] == "beam_search[lookahead=2]@prm"
    assert labels[c.cell_id] == "best_of_n@prm2"
