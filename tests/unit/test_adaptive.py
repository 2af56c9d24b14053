"""The adaptive strategy on the scripted policy and verifier with a hand-built policy: which problem
goes to which strategy, probes reused or charged, batching by choice; and how a spec carries a policy."""

from __future__ import annotations

import json
from dataclasses import replace

import polars as pl
import pytest

from tests.scripted import context
from tests.unit.test_policy import policy_data
from ttscale.analysis.cells import describe_cells
from ttscale.errors import SpecError
from ttscale.spec import CellSpec, DatasetSpec, SamplingParams, parse_sweep
from ttscale.strategies import load_strategy
from ttscale.strategies.common import SearchContext
from ttscale.strategy_params import AdaptiveParams
from ttscale.tree import Problem, check_tree
from ttscale.verifiers.scripted import ScriptedVerifier

# The verifier scores every step of a problem alike, by the problem: probes of "easy" average 0.9
# (bin 1: best_of_n), "medium" 0.5 (bin 2: beam search, M = 2, 3 iterations), "hard" 0.1 (bin 3:
# majority), against the policy's thresholds 0.7 and 0.4.
SCORE = {"easy": 0.9, "medium": 0.5, "hard": 0.1}
PROBLEMS = [Problem("toy", name, name, "1") for name in ("easy", "medium", "hard", "easy2")]


def adaptive_context() -> SearchContext:
    """The shared scripted context (`tests.scripted.context`) with a verifier that scores a
    problem by its name, so each problem's difficulty bin is known."""
    return replace(context(), verifier=ScriptedVerifier(lambda problem, steps: SCORE[problem.rstrip("2")]))


def run(n: int, probes: int):
    ctx = adaptive_context()
    params = AdaptiveParams(policy=policy_data(), probes=probes)
    results = load_strategy("adaptive")(PROBLEMS, n, params, ctx)
    for r in results:
        check_tree(r)  # tokens of every node, probes included, add up to the problem's total
    return results, ctx


def test_each_problem_runs_its_bins_choice_and_probes_are_charged():
    """n = 4, k = 2. easy and easy2 (bin 1, best_of_n): their 2 probes are the first 2 candidates
    and 2 more samples the other 2 (4 completion nodes, all candidates). medium (bin 2): beam search
    at N = 4 grafted under the 2 probes, which are nodes but no candidates. hard (bin 3, majority):
    2 probes + 2 samples. Engine calls: the probes (4 prompts at n = 2); best_of_n's 2 more for easy
    and easy2 in one call; beam search's 3 iterations; majority's 2 more."""
    (easy, medium, hard, easy2), ctx = run(n=4, probes=2)
    assert [r.predicted_bin for r in (easy, medium, hard, easy2)] == [1, 2, 3, 1]
    for res in (easy, easy2, hard):
        assert [n.kind for n in res.nodes] == ["completion"] * 4
        assert [c.leaf for c in res.candidates] == [0, 1, 2, 3]
    probes, tree = medium.nodes[:2], medium.nodes[2:]
    assert [n.kind for n in probes] == ["completion", "completion"] and not any(n.selected for n in probes)
    assert {n.kind for n in tree} == {"step"} and all(n.parent is None or n.parent >= 2 for n in tree)
    assert medium.candidates and all(c.leaf >= 2 for c in medium.candidates) and len(medium.candidates) <= 4
    assert all(c.text.count("\n\n") == 3 for c in medium.candidates)  # beam search's three steps and the answer
    assert [c.index for c in medium.candidates] == list(range(len(medium.candidates)))
    # Probe tokens are in every total: the medium problem pays for 2 probes beyond its beam search.
    assert medium.n_generated_tokens == sum(n.n_generated_tokens for n in probes) + sum(n.n_generated_tokens for n in tree)
    assert sum(n.n_generated_tokens for n in probes) > 0
    assert ctx.policy.calls[0] == (4, 2)  # every problem's probes in one call
    assert ctx.policy.calls[1] == (2, 2)  # best_of_n: easy and easy2 together, 2 more each
    assert ctx.policy.calls[-1] == (1, 2)  # majority: hard's 2 more
    assert len(ctx.policy.calls) == 2 + 3 + 1  # probes, best_of_n, 3 beam iterations, majority
    assert medium.n_policy_calls == 1 + 1 + 2 + 2  # probe request, then beam search's requests


def test_probes_beyond_the_budget_are_charged_but_not_candidates():
    """k = 6 probes at n = 4: best_of_n and majority take the first 4 probes as their candidates and
    sample nothing more; the other 2 stay in the tree, charged. At n = 8 all 6 are candidates and
    2 more are sampled."""
    (easy, medium, hard, _), ctx = run(n=4, probes=6)
    for res in (easy, hard):
        assert [c.leaf for c in res.candidates] == [0, 1, 2, 3] and len(res.nodes) == 6
        assert [n.selected for n in res.nodes] == [True] * 4 + [False] * 2
    assert ctx.policy.calls[0] == (4, 6) and len(ctx.policy.calls) == 1 + 3  # probes, then beam search's 3 iterations alone
    (easy, medium, hard, _), ctx = run(n=8, probes=6)
    assert [c.leaf for c in easy.candidates] == list(range(8)) and len(easy.nodes) == 8


def test_bins_are_predicted_from_the_mean_probe_score():
    """Scores by the probe's answer (`last` aggregation: the answer step's score): the first probe
    of a problem answers 1, the second 2. "high" scores them 1.0 and 0.5: mean 0.75, bin 1
    (best_of_n), though its second probe alone would be bin 2; "mid" scores them 0.75 and 0.25:
    mean 0.5, bin 2 (beam search), though either probe alone would be bin 1 or 3."""
    ctx = adaptive_context()
    scores = {"high": (1.0, 0.5), "mid": (0.75, 0.25)}
    ctx.verifier = ScriptedVerifier(lambda problem, steps: scores[problem][0 if "boxed{1}" in steps[-1] else 1])
    params = AdaptiveParams(policy=policy_data(), probes=2)
    high, mid = load_strategy("adaptive")([Problem("toy", p, p, "1") for p in ("high", "mid")], 4, params, ctx)
    assert [n.kind for n in high.nodes] == ["completion"] * 4
    assert [n.kind for n in mid.nodes[:2]] == ["completion"] * 2 and {n.kind for n in mid.nodes[2:]} == {"step"}


POLICY_FILE_SPEC = {
    "name": "adaptive", "models": ["scripted"], "verifiers": ["arithmetic"], "budgets": [4, 8],
    "datasets": [{"name": "arith", "limit": 3}],
}  # fmt: skip


def test_a_spec_embeds_the_policy_file_so_the_cell_id_is_its_content(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy_data()), encoding="utf-8")
    spec = parse_sweep({**POLICY_FILE_SPEC, "strategies": [{"name": "adaptive", "policy": str(path), "probes": 2}]})
    cell = spec.cells()[0]
    assert cell.strategy.policy["predictor"]["bins"][0]["min_score"] == 0.7
    assert CellSpec.model_validate_json(cell.canonical_json()) == cell  # a worker needs no file
    changed = policy_data()
    changed["predictor"]["bins"][0]["min_score"] = 0.75
    path.write_text(json.dumps(changed), encoding="utf-8")
    again = parse_sweep({**POLICY_FILE_SPEC, "strategies": [{"name": "adaptive", "policy": str(path), "probes": 2}]})
    assert again.cells()[0].cell_id != cell.cell_id
    # Labels and trackers show the policy by its id, not its content.
    label = describe_cells(pl.DataFrame([{"cell_id": c.cell_id, "model": c.model, "dataset": "arith", "strategy": "adaptive",
                                          "n": c.n, "seed": 0, "spec": c.canonical_json()} for c in (cell, again.cells()[0])]))
    assert sorted(set(label["config"])) == sorted(f"adaptive[policy={c.strategy.shown_params()['policy']}]" for c in (cell, again.cells()[0]))


@pytest.mark.parametrize(
    "change,message",
    [
        ({"models": ["other"]}, "strategies[0].policy: learned for model 'scripted', the cell runs 'other'"),
        ({"budgets": [4, 16]}, "strategies[0].policy: has no choices at n=16; its budgets are [4, 8]"),
        ({"aggregation": "min"}, "strategies[0].policy: predicts difficulty from arithmetic/last scores, the cell scores with arithmetic/min"),
    ],
)
def test_a_sweep_that_cannot_apply_its_policy_is_refused(tmp_path, change, message):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy_data()), encoding="utf-8")
    with pytest.raises(SpecError) as err:
        parse_sweep({**POLICY_FILE_SPEC, **change, "strategies": [{"name": "adaptive", "policy": str(path)}]})
    assert str(err.value) == message


def test_a_bad_policy_file_is_one_line_naming_the_strategy(tmp_path):
    with pytest.raises(SpecError, match=r"^strategies\[0\]\.policy: no such file"):
        parse_sweep({**POLICY_FILE_SPEC, "strategies": [{"name": "adaptive", "policy": str(tmp_path / "missing.json")}]})
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy_data(version=7)), encoding="utf-8")
    with pytest.raises(SpecError, match=r"^strategies\[0\]\.policy '.*policy\.json': version: this ttscale reads policy version 1, got 7$"):
        parse_sweep({**POLICY_FILE_SPEC, "strategies": [{"name": "adaptive", "policy": str(path)}]})


def test_a_cell_refuses_a_policy_for_another_model():
    with pytest.raises(ValueError, match="strategy.policy: learned for model 'scripted', the cell runs 'smollm2-135m'"):
        CellSpec(model="smollm2-135m", verifier="arithmetic", strategy=AdaptiveParams(policy=policy_data()), n=4, dataset=DatasetSpec(name="arith"))


def test_the_estimate_covers_the_probes_and_the_dearest_choice():
    params = AdaptiveParams(policy=policy_data(), probes=2)
    sampling = SamplingParams(max_tokens=100, step_max_tokens=10)
    # At n = 4: 2 probes, then beam search (3 iterations of 4) is the dearest choice: 12 generations,
    # 4·2·10 + 4·100 tokens.
    assert params.estimate(4, sampling) == (2 + 12, 2 * 100 + 4 * 2 * 10 + 4 * 100)
