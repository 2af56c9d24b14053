"""The policy file: its model and validation, bin prediction, and what `learn_policy` chooses."""

from __future__ import annotations

import json
from typing import get_args

import polars as pl
import pytest

from benchmarks.synthetic_sweep import synthetic_sweep
from ttscale.analysis.cells import describe_cells
from ttscale.analysis.difficulty import difficulty_bins
from ttscale.analysis.frontier import frontier_points
from ttscale.analysis.learned_policy import learn_policy
from ttscale.analysis.verdicts import SELECTORS, problem_verdicts
from ttscale.errors import SpecError
from ttscale.policy import Policy, Selection, load_policy, parse_policy, save_policy
from ttscale.strategy_params import BeamSearchParams, BestOfNParams, MajorityParams


def policy_data(**changes) -> dict:
    """A hand-built policy: 3 bins split at scores 0.7 and 0.4; best_of_n for the easy bin,
    beam search for the middle one, majority for the hard one, at n = 4 and 8."""
    choice = {"verifier": "arithmetic", "aggregation": "last", "selection": "weighted", "accuracy": 0.5, "n_problems": 10}
    strategies = {1: BestOfNParams(), 2: BeamSearchParams(beam_width=2, n_iterations=3), 3: MajorityParams()}
    data = {
        "version": 1,
        "model": "scripted",
        "dataset": "arith",
        "sweep_id": "abc",
        "code_version": "0.1.0",
        "predictor": {
            "verifier": "arithmetic",
            "aggregation": "last",
            "n_reference_samples": 8,
            "bins": [{"bin": 1, "min_score": 0.7}, {"bin": 2, "min_score": 0.4}, {"bin": 3, "min_score": None}],
        },
        "choices": [
            {**choice, "bin": b, "n": n, "strategy": s.model_dump(mode="json"), **({"verifier": None, "selection": "majority"} if b == 3 else {})}
            for b, s in strategies.items()
            for n in (4, 8)
        ],
    }
    return {**data, **changes}


def test_bins_are_predicted_by_thresholds_and_choices_looked_up():
    policy = parse_policy(policy_data())
    assert [policy.predict_bin(s) for s in (1.0, 0.7, 0.69, 0.4, 0.39, 0.0)] == [1, 1, 2, 2, 3, 3]
    assert policy.budgets == (4, 8)
    assert policy.choice(2, 8).strategy == BeamSearchParams(beam_width=2, n_iterations=3)
    assert policy.choice(3, 4).selection == "majority"
    with pytest.raises(SpecError, match=r"policy: no choice for bin 2 at n=16; budgets: \[4, 8\]"):
        policy.choice(2, 16)


def test_a_policy_round_trips_through_its_file(tmp_path):
    policy = parse_policy(policy_data())
    path = save_policy(policy, tmp_path / "policy.json")
    assert load_policy(path) == policy
    assert json.loads(path.read_text())["version"] == 1
    assert len(policy.policy_id) == 12 and policy.policy_id == load_policy(path).policy_id


@pytest.mark.parametrize(
    "change,message",
    [
        ({"version": 2}, "policy: version: this ttscale reads policy version 1, got 2"),
        ({"version": True}, "policy: version: true/false is not a valid value here, got True"),
        ({"surprise": 1}, "policy: surprise: Extra inputs are not permitted"),
        ({"choices": []}, "policy: choices: Tuple should have at least 1 item"),
        ({"model": 3, "dataset": None}, "policy: model: Input should be a valid string, got 3 (and 1 more)"),
    ],
)
def test_a_bad_policy_is_one_line(change, message):
    with pytest.raises(SpecError) as err:
        parse_policy(policy_data(**change))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bad_bins_and_choices_are_refused_naming_the_field():
    data = policy_data()
    data["predictor"]["bins"][1]["min_score"] = 0.8
    with pytest.raises(SpecError, match=r"predictor: .*bins: min_score must decrease .*\[0.7, 0.8\]"):
        parse_policy(data)
    data = policy_data()
    data["choices"] = data["choices"][:-1]
    with pytest.raises(SpecError, match="choices: no choice for bin 3 at n=8"):
        parse_policy(data)
    data = policy_data()
    data["choices"][0]["strategy"] = {"name": "adaptive", "policy": {}}
    with pytest.raises(SpecError, match=r"policy: choices\[0\]\.strategy: Input tag 'adaptive' found using 'name' does not match"):
        parse_policy(data)
    data = policy_data()
    data["choices"][0]["strategy"] = {"name": "beam_search", "beam_width": 0}
    with pytest.raises(SpecError, match=r"policy: choices\[0\]\.strategy\.beam_width: Input should be greater than or equal to 1"):
        parse_policy(data)


def test_a_policy_file_that_is_not_json_is_one_line(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(SpecError, match=r"^policy: '.*p\.json' is not valid JSON: ") as err:
        load_policy(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(SpecError, match="no such file"):
        load_policy(tmp_path / "missing.json")


def test_cells_that_cannot_apply_a_policy_are_named():
    policy = parse_policy(policy_data())
    ok = dict(model="scripted", verifier="arithmetic", aggregation="last", n=4)
    assert policy.cell_error(**ok) is None
    assert "learned for model 'scripted'" in policy.cell_error(**{**ok, "model": "other"})
    assert "arithmetic/last scores" in policy.cell_error(**{**ok, "aggregation": "min"})
    assert "no choices at n=2" in policy.cell_error(**{**ok, "n": 2})


def test_selection_methods_are_the_analysis_selectors():
    assert set(get_args(Selection)) == set(SELECTORS)


@pytest.fixture(scope="module")
def sweep():
    return synthetic_sweep(n_problems=60, n=8, seeds=(0, 1), rng_seed=5, strategies=("best_of_n", "majority", "dvts", "beam_search"))


def test_learned_policy_chooses_the_best_in_sample_option_per_bin(sweep):
    policy = learn_policy(sweep.cells, sweep.candidates, sweep.runs, code_version="test", model="small-1b", sweep={"sweep_id": "s1", "name": "syn", "code_version": "v0"})
    assert (policy.model, policy.dataset, policy.sweep_id, policy.sweep_name, policy.sweep_code_version) == ("small-1b", "math500", "s1", "syn", "v0")
    assert policy.predictor.verifier == "synthetic_prm" and policy.predictor.n_reference_samples == 8
    assert [b.bin for b in policy.predictor.bins] == [1, 2, 3, 4, 5]
    # The same choice, recomputed the plain way: per bin and n, the best mean correctness.
    cells = sweep.cells.filter(pl.col("model") == "small-1b")
    described = describe_cells(cells)
    cands = sweep.candidates.filter(pl.col("cell_id").is_in(cells["cell_id"].implode()))
    verdicts = problem_verdicts(cands, n_cells=dict(zip(described["cell_id"], described["n_cell"], strict=True)))
    bins = difficulty_bins(verdicts.problem_stats, described, how="predicted")
    points = frontier_points(verdicts.per_problem, described, sweep.runs).join(bins.select("problem_id", "bin"), on="problem_id")
    best = points.group_by("bin", "n", "option").agg(pl.col("correct").mean()).group_by("bin", "n").agg(pl.col("correct").max())
    for row in best.iter_rows(named=True):
        choice = policy.choice(row["bin"], row["n"])
        assert choice.accuracy == pytest.approx(row["correct"])
        assert choice.n_problems == bins.filter(pl.col("bin") == row["bin"]).height
    assert policy.budgets == (1, 2, 4, 8)
    # beam search is a run only at its own N, DVTS at whole subtrees (M = 4)
    assert all(c.strategy.name != "beam_search" or c.n == 8 for c in policy.choices)
    assert all(c.strategy.name != "dvts" or c.n in (4, 8) for c in policy.choices)
    # Thresholds separate the bins' mean scores on the sweep: each problem's predicted bin is its bin.
    ref = verdicts.problem_stats.join(described.filter(pl.col("strategy") == "best_of_n"), on="cell_id")
    mean = ref.group_by("problem_id").agg(((pl.col("mean_score") * pl.col("n_scored")).sum() / pl.col("n_scored").sum()).alias("s"))
    got = mean.join(bins, on="problem_id")
    assert all(policy.predict_bin(s) == b for s, b in got.select("s", "bin").iter_rows())


def test_a_policy_is_for_one_model_and_dataset(sweep):
    with pytest.raises(SpecError, match=r"a policy is for one model and dataset; name them .* among large-8b on math500, small-1b on math500"):
        learn_policy(sweep.cells, sweep.candidates, sweep.runs, code_version="test")
    with pytest.raises(SpecError, match="no cells of tiny"):
        learn_policy(sweep.cells, sweep.candidates, sweep.runs, code_version="test", model="tiny")
