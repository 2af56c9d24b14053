"""What tracking logs, computed from store frames (pure parts of ttscale.tracking)."""

from __future__ import annotations

import json

import polars as pl

from ttscale.spec import parse_sweep
from ttscale.tracking import cell_metrics, cell_params, redact, sweep_params


def test_passwords_in_urls_are_redacted():
    assert redact("postgresql+psycopg://ttscale:s3cr%40t@db:5432/ttscale") == "postgresql+psycopg://ttscale:***@db:5432/ttscale"
    assert redact("store at https://bob:pw@mlflow.example/ and sqlite:////x/y.db") == "store at https://bob:***@mlflow.example/ and sqlite:////x/y.db"
    assert redact("http://host:5000/api") == "http://host:5000/api"  # a port is not a password


def test_sweep_params_redact_urls_in_the_spec():
    row = {
        "id": "abc", "name": "s", "spec_hash": "h", "code_version": "0.1.0", "created_by": "me@host",
        "spec": "name: s\nmodels: [scripted]\ndatasets: [{name: jsonl, path: 'https://u:hunter2@files/x.jsonl'}]\n",
    }  # fmt: skip
    params = sweep_params(row)
    assert "hunter2" not in json.dumps(params)
    assert params["models"] == '["scripted"]'


def _cell_row(spec, **extra):
    cell = spec.cells()[0]
    return {
        "id": cell.cell_id, "spec": cell.canonical_json(), "n": cell.n, "dataset": cell.dataset.label,
        "code_version": "v", "source_cell_id": None, **extra,
    }  # fmt: skip


def test_cell_metrics_match_verdicts_and_scale_for_served_cells():
    spec = parse_sweep({"name": "m", "models": ["scripted"], "verifiers": ["arithmetic"], "strategies": [{"name": "best_of_n"}],
                        "budgets": [4], "datasets": [{"name": "arith", "limit": 2}]})  # fmt: skip
    source = _cell_row(spec)
    verdicts = pl.DataFrame({
        "cell_id": [source["id"]] * 8,
        "problem_id": ["a", "b"] * 4,
        "method": ["naive"] * 4 + ["pass"] * 4,
        "n": [2, 2, 4, 4] * 2,
        "answer": [None] * 8,
        "correct": [True, False, True, True, False, True, True, True],
    })  # fmt: skip
    runs = pl.DataFrame({
        "cell_id": [source["id"]] * 2, "problem_id": ["a", "b"],
        "n_prompt_tokens": [10, 20], "n_generated_tokens": [100, 300], "n_verifier_tokens": [0, 0],
        "policy_flops": [1000, 3000], "verifier_flops": [0, 0], "elapsed_s": [1.5, 2.5],
    })  # fmt: skip
    got = {(k, step): v for k, v, step in cell_metrics(source, None, verdicts, runs)}
    assert got[("accuracy_naive", 2)] == 0.5 and got[("accuracy_naive", 4)] == 1.0
    assert got[("pass_at_n", 2)] == 0.5 and got[("pass_at_n", 4)] == 1.0
    assert got[("n_generated_tokens", 4)] == 400 and got[("total_flops", 4)] == 4000
    assert got[("wall_time_s", 4)] == 4.0 and got[("problems_per_s", 4)] == 0.5
    served = {**source, "id": "served", "n": 2, "source_cell_id": source["id"]}
    got = {(k, step): v for k, v, step in cell_metrics(served, source, verdicts, runs)}
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
