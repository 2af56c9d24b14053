"""What tracking logs, computed from store frames (pure parts of ttscale.tracking)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ttscale.redaction import redact_urls
from ttscale.results import StoredResults, summaries
from ttscale.spec import parse_sweep
from ttscale.tracking import cell_metrics, cell_params, sweep_params


def test_passwords_in_urls_are_redacted():
    assert redact_urls("postgresql+psycopg://ttscale:s3cr%40t@db:5432/ttscale") == "postgresql+psycopg://ttscale:***@db:5432/ttscale"
    assert redact_urls("store at https://bob:pw@mlflow.example/ and sqlite:////x/y.db") == "store at https://bob:***@mlflow.example/ and sqlite:////x/y.db"
    assert redact_urls("http://host:5000/api") == "http://host:5000/api"  # a port is not a password


def test_sweep_params_redact_urls_in_the_spec():
    row = {
        "sweep_id": "abc", "name": "s", "spec_hash": "h", "code_version": "0.1.0", "created_by": "me@host",
        "spec": "name: s\nmodels: [scripted]\ndatasets: [{name: jsonl, path: 'https://u:hunter2@files/x.jsonl'}]\n",
    }  # fmt: skip
    params = sweep_params(row)
    assert "hunter2" not in json.dumps(params)
    assert params["models"] == '["scripted"]'


def _cell_row(spec, **extra):
    cell = spec.cells()[0]
    return {
        "cell_id": cell.cell_id, "spec": cell.canonical_json(), "n": cell.n, "dataset": cell.dataset.label,
        "strategy": cell.strategy.name, "code_version": "v", "source_cell_id": None, **extra,
    }  # fmt: skip


def test_cell_metrics_are_the_analysis_numbers_and_scale_for_served_cells():
    spec = parse_sweep({"name": "m", "models": ["scripted"], "verifiers": ["arithmetic"], "strategies": [{"name": "best_of_n"}],
                        "budgets": [4], "datasets": [{"name": "arith", "limit": 2}]})  # fmt: skip
    source = _cell_row(spec)
    served = {**source, "cell_id": "served", "n": 2, "source_cell_id": source["cell_id"]}
    cells = pl.DataFrame([source, served]).select("cell_id", "strategy", "n", "source_cell_id")
    # a: only candidate 0 is right and scores best; b: candidates 2 and 3 are right, 0 scores best.
    candidates = pl.DataFrame({
        "cell_id": [source["cell_id"]] * 8, "problem_id": ["a"] * 4 + ["b"] * 4, "idx": [0, 1, 2, 3] * 2,
        "answer_class": [0, 1, 1, 1, 0, 1, 2, 2], "correct": [True, False, False, False, False, False, True, True],
        "score": [0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.8, 0.8],
    })  # fmt: skip
    runs = pl.DataFrame({
        "cell_id": [source["cell_id"]] * 2, "problem_id": ["a", "b"],
        "n_prompt_tokens": [10, 20], "n_prompt_tokens_computed": [10, 20], "n_generated_tokens": [100, 300],
        "n_verifier_tokens": [0, 0], "policy_flops": [1000, 3000], "policy_flops_computed": [1100, 3200],
        "verifier_flops": [0, 0], "elapsed_s": [1.5, 2.5],
    })  # fmt: skip
    got_summaries = summaries(StoredResults(cells, candidates, runs, pl.DataFrame()))
    got = {(k, step): v for k, v, step in cell_metrics(source, got_summaries)}
    assert got[("accuracy_naive", 2)] == 0.5 and got[("accuracy_naive", 4)] == 0.5
    # pass@n is the unbiased estimate from all 4: a 1 - C(3,2)/C(4,2) = 1/2, b 1 - 1/6.
    assert got[("pass_at_n", 2)] == pytest.approx((0.5 + 5 / 6) / 2) and got[("pass_at_n", 4)] == 1.0
    assert got[("n_generated_tokens", 4)] == 400 and got[("total_flops", 4)] == 4000
    assert got[("wall_time_s", 4)] == 4.0 and got[("problems_per_s", 4)] == 0.5
    got = {(k, step): v for k, v, step in cell_metrics(served, got_summaries)}
    assert ("accuracy_naive", 4) not in got and got[("accuracy_naive", 2)] == 0.5
    assert got[("n_generated_tokens", 2)] == 200  # first 2 of 4 samples: half the source's tokens
    assert ("wall_time_s", 2) not in got  # no wall time of its own


def test_cell_params_carry_strategy_and_sampling_fields():
    spec = parse_sweep({"name": "p", "models": ["scripted"], "verifiers": ["arithmetic"],
                        "strategies": [{"name": "beam_search", "beam_width": 2, "n_iterations": 3}],
                        "budgets": [4], "datasets": [{"name": "arith", "limit": 2}], "seeds": [7]})  # fmt: skip
    params = cell_params(_cell_row(spec), {"spec_hash": "h" * 64})
    assert params["strategy"] == "beam_search" and params["strategy.beam_width"] == "2"
    assert params["strategy.n_iterations"] == "3" and params["n"] == "4" and params["seed"] == "7"
    assert params["sampling.temperature"] == "0.8" and params["dataset.limit"] == "2"
    assert params["verifier"] == "arithmetic" and params["spec_hash"] == "h" * 64
