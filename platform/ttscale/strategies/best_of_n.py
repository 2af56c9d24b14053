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
from ttscale.strategies.common import Request, SearchContext, add_node, generate, make_candidate, score_solutions
from ttscale.tree import Problem, ProblemResult


def sample_and_score(problems: Sequence[Problem], n: int, ctx: SearchContext) -> list[ProblemResult]:
    results = [ProblemResult(p.id, [], []) for p in problems]
    got = generate(ctx, problems, results, [Request(i, "", n) for i in range(len(problems))], step=False)
    flat = [(i, c) for i, row in enumerate(got) for c in row]
    scores = score_solutions(
        ctx, [problems[i].text for i, _ in flat], [c.text for _, c in flat], [results[i] for i, _ in flat]
    )
    for (i, c), s in zip(flat, scores, strict=True):
        res = results[i]
        node = add_node(
            res,
            parent=None,
            depth=0,
            text=c.text,
            kind="completion",
            n_prompt_tokens=c.n_prompt_tokens,
            n_generated_tokens=c.n_generated_tokens,
            n_cached_prompt_tokens=c.n_cached_prompt_tokens,
            scores=s,
            finish_reason=c.finish_reason,
        )
        res.candidates.append(make_candidate(ctx, res, len(res.candidates), node.id, s))
    ctx.report(f"sampled {len(flat)} solutions for {len(problems)} problems")
    return results


@register(BestOfNParams)
def best_of_n(problems: Sequence[Problem], n: int, params: BestOfNParams, ctx: SearchContext) -> list[ProblemResult]:
    return sample_and_score(problems, n, ctx)


@register(MajorityParams)
def majority(problems: Sequence[Problem], n: int, params: MajorityParams, ctx: SearchContext) -> list[ProblemResult]:
    return sample_and_score(problems, n, ctx)
