"""Best-of-N and majority vote: sample N whole solutions per problem, score, select.

Algorithm (Snell et al. 2024 §5; search-and-learn `best_of_n`): one request per problem with
n=N samples at temperature T; the verifier scores every `\\n\\n` step of every sample, and
the steps' scores are aggregated (last/min/prod) into the candidate's score. Selection among
the N candidates (naive / weighted / majority) happens after grading, in `ttscale.selection`.
`majority` is the same generation without a verifier (one is used if given, for weighting).

Symbols: N → `n`. Model calls per shard: 1 generate (all problems) + 1 verifier call.
Tree: one `completion` node per sample, at depth 0; candidate i is node i.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.strategies import register
from ttscale.strategy_params import BestOfNParams, MajorityParams
from ttscale.strategies.common import SearchContext, make_candidate, sample_whole
from ttscale.tree import Problem, ProblemResult


def sample_and_score(problems: Sequence[Problem], n: int, ctx: SearchContext) -> list[ProblemResult]:
    results = [ProblemResult(p.id, [], []) for p in problems]
    nodes = sample_whole(ctx, problems, results, [n] * len(problems))
    for res, mine in zip(results, nodes, strict=True):
        for node in mine:
            res.candidates.append(make_candidate(ctx, res, len(res.candidates), node.id, node.scores))
    ctx.report(f"sampled {sum(map(len, nodes))} solutions for {len(problems)} problems")
    return results


@register(BestOfNParams)
def best_of_n(problems: Sequence[Problem], n: int, params: BestOfNParams, ctx: SearchContext) -> list[ProblemResult]:
    return sample_and_score(problems, n, ctx)


@register(MajorityParams)
def majority(problems: Sequence[Problem], n: int, params: MajorityParams, ctx: SearchContext) -> list[ProblemResult]:
    return sample_and_score(problems, n, ctx)
