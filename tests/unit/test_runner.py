"""run_shard: the one way a shard runs, on the scripted policy and verifier."""

from __future__ import annotations

from tests.scripted import context, problems
from ttscale.runner import budgets_to_judge, judge, run_shard
from ttscale.spec import CellSpec


def cell(strategy: dict, n: int, verifier: str | None = "scripted") -> CellSpec:
    return CellSpec(model="scripted", verifier=verifier, strategy=strategy, n=n, dataset={"name": "arith"})


def test_budgets_to_judge_follow_prefix_sharing():
    assert budgets_to_judge(cell({"name": "best_of_n"}, 8)) == [1, 2, 4, 8]
    assert budgets_to_judge(cell({"name": "dvts", "beam_width": 2}, 6)) == [1, 2, 4, 6]
    assert budgets_to_judge(cell({"name": "beam_search", "beam_width": 2}, 8)) == [8]


def test_run_shard_grades_and_judges_every_problem():
    ctx = context()
    probs = problems(4)
    outcome = run_shard(cell({"name": "best_of_n"}, 4), probs, ctx.policy, ctx.verifier, ctx.prompts)
    assert outcome.policy_params == ctx.policy.n_params and outcome.verifier_params == ctx.verifier.n_params
    for problem, result in zip(probs, outcome.results, strict=True):
        assert all(c.answer is not None and c.answer_method == "boxed" for c in result.candidates)
        assert all(c.correct == (c.answer == problem.answer) for c in result.candidates)
    # 4 problems × budgets (1, 2, 4) × (naive, weighted, majority, pass)
    assert len(outcome.verdicts) == 4 * 3 * 4
    for v in outcome.verdicts:
        result = outcome.results[[p.id for p in probs].index(v.problem_id)]
        if v.method == "pass":
            assert v.correct == any(c.correct for c in result.candidates[: v.n])


def test_pass_at_n_never_falls_as_n_grows():
    ctx = context()
    outcome = run_shard(cell({"name": "majority"}, 8, None), problems(6), ctx.policy, None, ctx.prompts)
    for pid in {v.problem_id for v in outcome.verdicts}:
        passes = [v.correct for v in sorted(outcome.verdicts, key=lambda v: v.n) if v.problem_id == pid and v.method == "pass"]
        assert passes == sorted(passes)


def test_judge_uses_first_n_candidates_only():
    ctx = context()
    outcome = run_shard(cell({"name": "best_of_n"}, 4), problems(1), ctx.policy, ctx.verifier, ctx.prompts)
    result = outcome.results[0]
    for c in result.candidates[1:]:
        c.correct = True
    result.candidates[0].correct = False
    got = {(v.method, v.n): v.correct for v in judge("p0", result, [1, 4])}
    assert got[("pass", 1)] is False and got[("pass", 4)] is True
