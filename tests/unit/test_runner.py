"""The search of one shard (`runner.search_shard`) on the scripted policy and verifier: graded,
judged at the budgets the strategy declares, with the one pass@n definition."""

from __future__ import annotations

import pytest

from tests.scripted import context, problems
from ttscale.analysis.verdicts import shard_verdicts
from ttscale.planning import PreparedCell
from ttscale.backends import resolve_policy_model
from ttscale.runner import CellRuntime, search_shard
from ttscale.settings import Settings
from ttscale.spec import CellSpec


def cell(strategy: dict, n: int, verifier: str | None = "scripted") -> CellSpec:
    return CellSpec(model="scripted", verifier=verifier, strategy=strategy, n=n, dataset={"name": "arith"})


def runtime(c: CellSpec, ctx) -> CellRuntime:
    prepared = PreparedCell(c, [], resolve_policy_model("scripted", Settings.from_env({})))
    return CellRuntime(prepared, ctx.policy, ctx.verifier, ctx.prompts)


def test_budgets_to_judge_follow_prefix_sharing():
    assert cell({"name": "best_of_n"}, 8).judged_budgets() == [1, 2, 4, 8]
    # DVTS: whole subtrees only (M, 2M, ..., N); the reference's score() judges every power of two.
    assert cell({"name": "dvts", "beam_width": 2}, 6).judged_budgets() == [2, 4, 6]
    assert cell({"name": "dvts", "beam_width": 2}, 6).model_copy(update={"fidelity": "search-and-learn"}).judged_budgets() == [1, 2, 4, 6]
    assert cell({"name": "beam_search", "beam_width": 2}, 8).judged_budgets() == [8]


def test_run_shard_grades_and_judges_every_problem():
    ctx = context()
    probs = problems(4)
    c = cell({"name": "best_of_n"}, 4)
    outcome = search_shard(c, probs, runtime(c, ctx))
    assert outcome.policy_params == ctx.policy.n_params and outcome.verifier_params == ctx.verifier.n_params
    for problem, result in zip(probs, outcome.results, strict=True):
        assert all(c.answer is not None and c.answer_method == "boxed" for c in result.candidates)
        assert all(c.correct == (c.answer == problem.answer) for c in result.candidates)
    # 4 problems × budgets (1, 2, 4) × (naive, weighted, majority, pass)
    assert len(outcome.verdicts) == 4 * 3 * 4
    for v in outcome.verdicts:
        result = outcome.results[[p.id for p in probs].index(v.problem_id)]
        if v.method == "pass":  # the unbiased pass@n estimate from all N candidates
            n_correct = sum(bool(c.correct) for c in result.candidates)
            if v.n == 4:
                assert v.correct == float(n_correct > 0)
            if v.n == 1:
                assert v.correct == pytest.approx(n_correct / 4)


def test_pass_at_n_never_falls_as_n_grows():
    ctx = context(verifier=False)
    c = cell({"name": "majority"}, 8, None)
    outcome = search_shard(c, problems(6), runtime(c, ctx))
    for pid in {v.problem_id for v in outcome.verdicts}:
        passes = [v.correct for v in sorted(outcome.verdicts, key=lambda v: v.n) if v.problem_id == pid and v.method == "pass"]
        assert passes == sorted(passes)


def test_judge_uses_first_n_candidates_only():
    ctx = context()
    c = cell({"name": "best_of_n"}, 4)
    outcome = search_shard(c, problems(1), runtime(c, ctx))
    result = outcome.results[0]
    for cand in result.candidates[1:]:
        cand.correct = True
    result.candidates[0].correct = False
    got = {(v.method, v.n): v.correct for v in shard_verdicts([result], [1, 4])}
    assert got[("naive", 1)] == 0.0  # at n=1 selection sees candidate 0 only
    assert got[("pass", 1)] == pytest.approx(0.75) and got[("pass", 4)] == 1.0  # pass@n counts all N
