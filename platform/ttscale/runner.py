"""The composition root of one shard: problems, policy and verifier in; a graded,
accounted `ShardOutcome` out. `ttscale run` and the Prefect shard task both call `run_shard`,
so there is one way a shard runs.

`prepare_cell` checks everything a cell needs (names, dataset, budget) *before* any model
loads, so bad input fails in seconds and writes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ttscale.backends.base import Policy
from ttscale.data import load_problems
from ttscale.grading import extract_answer, group_equivalent, is_correct, parse_gold
from ttscale.prompting import PromptBuilder
from ttscale.selection import METHODS, select
from ttscale.spec import PREFIX_SHAREABLE, CellSpec
from ttscale.strategies import load_strategy
from ttscale.strategies.common import SearchContext
from ttscale.tree import Problem, ProblemResult, ShardOutcome, Verdict, check_tree
from ttscale.verifiers import Verifier, verifier_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedCell:
    cell: CellSpec
    problems: list[Problem]
    model_info: object
    """`ttscale.models.ModelInfo` of the policy (prompt format, parameter count)."""


def prepare_cell(cell: CellSpec, settings) -> PreparedCell:
    """Validate every name and load the problems; no model is loaded. Raises TtscaleError."""
    from ttscale.backends import resolve_policy_model
    from ttscale.errors import SpecError

    load_strategy(cell.strategy.name)
    if cell.verifier is not None and cell.verifier not in verifier_names():
        from ttscale.verifiers import VERIFIERS

        raise SpecError(VERIFIERS.unknown_message(cell.verifier, "verifier"))
    info = resolve_policy_model(cell.model, settings)
    problems = load_problems(cell.dataset)
    return PreparedCell(cell, problems, info)


def budgets_to_judge(cell: CellSpec) -> list[int]:
    """Budgets whose verdicts a cell stores: every power of two up to N and N itself for
    strategies whose first n candidates equal a run at n; just N for the others."""
    if cell.strategy.name not in PREFIX_SHAREABLE:
        return [cell.n]
    out, n = [], 1
    while n < cell.n:
        out.append(n)
        n *= 2
    return [*out, cell.n]


def grade(problem: Problem, result: ProblemResult) -> ProblemResult:
    """Fill in each candidate's extracted answer, correctness and equivalence class."""
    gold = parse_gold(problem.answer)
    extracted = [extract_answer(c.text) for c in result.candidates]
    classes = group_equivalent([a for a, _ in extracted])
    result.candidates = [
        replace(c, answer=a, answer_method=m, correct=is_correct(a, gold), answer_class=k)
        for c, (a, m), k in zip(result.candidates, extracted, classes, strict=True)
    ]
    return result


def judge(problem_id: str, result: ProblemResult, budgets: Sequence[int]) -> list[Verdict]:
    """Verdicts of every selection method (and pass@n) on the first n candidates, per budget."""
    verdicts = []
    for n in budgets:
        cands = result.candidates[:n]
        if not cands:
            continue
        classes = [c.answer_class for c in cands]
        scores = [c.score for c in cands]
        for method in METHODS:
            pick = cands[select(classes, scores, method)]
            verdicts.append(Verdict(problem_id, method, n, pick.answer, bool(pick.correct)))
        verdicts.append(Verdict(problem_id, "pass", n, None, any(c.correct for c in cands)))
    return verdicts


def run_shard(
    cell: CellSpec,
    problems: Sequence[Problem],
    policy: Policy,
    verifier: Verifier | None,
    prompts: PromptBuilder,
    progress: Callable[[str], None] | None = None,
) -> ShardOutcome:
    """Run the cell's strategy on `problems` (one batched search), grade and judge."""
    start = time.perf_counter()
    strategy = load_strategy(cell.strategy.name)
    ctx = SearchContext(
        policy=policy,
        prompts=prompts,
        sampling=cell.sampling,
        verifier=verifier,
        aggregation=cell.aggregation,
        seed=cell.seed,
        progress=progress,
    )
    logger.info("shard start cell=%s strategy=%s n=%d problems=%d", cell.cell_id, cell.strategy.name, cell.n, len(problems))
    results = strategy(list(problems), cell.n, cell.strategy, ctx)
    budgets = budgets_to_judge(cell)
    verdicts: list[Verdict] = []
    for problem, result in zip(problems, results, strict=True):
        check_tree(result)
        grade(problem, result)
        verdicts += judge(problem.id, result, budgets)
    elapsed = time.perf_counter() - start
    n_unparsed = sum(c.answer is None for r in results for c in r.candidates)
    n_fallback = sum(c.answer_method == "last_number" for r in results for c in r.candidates)
    n_cands = sum(len(r.candidates) for r in results) or 1
    if n_fallback / n_cands > 0.5:
        logger.warning("answer extraction fell back to the last number for %d/%d candidates", n_fallback, n_cands)
    acc = {
        v.method: sum(x.correct for x in verdicts if x.method == v.method and x.n == cell.n) / len(problems)
        for v in verdicts
        if v.n == cell.n
    }
    logger.info(
        "shard end cell=%s problems=%d unparsed=%d accuracy=%s elapsed_s=%.1f",
        cell.cell_id,
        len(problems),
        n_unparsed,
        {k: round(v, 3) for k, v in acc.items()},
        elapsed,
    )
    return ShardOutcome(
        cell_id=cell.cell_id,
        problems=list(problems),
        results=results,
        verdicts=verdicts,
        policy_params=policy.n_params,
        verifier_params=verifier.n_params if verifier is not None else 0,
        elapsed_s=elapsed,
    )
