"""Roll-outs for step labels: N whole continuations of each given step prefix, graded like any candidate.

Math-Shepherd (Wang et al. 2024, §3.3) labels a step by completing the solution from it N times and
grading the completions. `ttscale learn dataset --rollouts N` plans cells of this strategy for the step
prefixes that stored trees left with too few graded candidates below them (pruned beam steps have
none), so their continuations are generated, charged and stored as a cell's are.

A prefix is continued as the verifiers read it: its steps, each followed by a blank line (a step cut
at its token limit is continued as a finished step, so every continuation meets the prefix's row).
A continuation may write up to `max_tokens` (the limit of a search's final roll-out).

Symbols: N → `n` (continuations per prefix). Model calls per shard: 1 generate for every prefix of
every problem; no verifier. Tree per problem: a `prefix` node per prefix (given text: no tokens) with
its N continuations as `completion` children; candidate i is prefix + continuation, so its steps
begin with the prefix's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ttscale.strategies import register
from ttscale.strategies.common import Request, SearchContext, add_node, generate, make_candidate
from ttscale.strategy_params import RolloutParams
from ttscale.tree import Node, Problem, ProblemResult
from ttscale.verifiers.base import STEP_SEPARATOR


def prefix_text(steps: Sequence[str]) -> str:
    """The text a prefix's continuations follow: each step and a blank line."""
    return "".join(step + STEP_SEPARATOR for step in steps)


@register(RolloutParams)
def rollout(problems: Sequence[Problem], n: int, params: RolloutParams, ctx: SearchContext) -> list[ProblemResult]:
    results = [ProblemResult(p.id, [], []) for p in problems]
    requests: list[Request] = []
    roots: list[Node] = []
    for i, problem in enumerate(problems):
        for steps in params.prefixes.get(problem.id, ()):
            text = prefix_text(steps)
            roots.append(add_node(results[i], parent=None, depth=0, text=text, kind="prefix", n_prompt_tokens=0, n_generated_tokens=0))
            requests.append(Request(i, text, n))
    got = generate(ctx, problems, results, requests, step=False)
    for request, root, completions in zip(requests, roots, got, strict=True):
        res = results[request.problem]
        for c in completions:
            node = add_node(
                res,
                parent=root.id,
                depth=1,
                text=c.text,
                kind="completion",
                n_prompt_tokens=c.n_prompt_tokens,
                n_generated_tokens=c.n_generated_tokens,
                n_cached_prompt_tokens=c.n_cached_prompt_tokens,
                finish_reason=c.finish_reason,
            )
            # The prompt the continuation read is its request's; the prefix node read none.
            candidate = make_candidate(ctx, res, len(res.candidates), node.id, ())
            res.candidates.append(replace(candidate, n_prompt_tokens=c.n_prompt_tokens))
    ctx.report(f"rolled out {len(requests)} prefixes × {n} for {sum(1 for r in results if r.nodes)} problems")
    return results
