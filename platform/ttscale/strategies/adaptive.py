"""Adaptive: apply a compute-optimal policy problem by problem, batched across problems.

Algorithm (Snell et al. 2024, arXiv 2408.03314, §3.2: choose the strategy per problem by its
predicted difficulty; the policy comes from `ttscale report SWEEP --policy FILE`, `ttscale.policy`):

1. k probes per problem (`probes`): whole solutions sampled and scored like Best-of-N's — one
   engine call and one verifier call for the whole shard;
2. the mean of the probes' scores (aggregated as the cell aggregates; unscored probes left out)
   predicts the problem's bin against the policy's thresholds (`Policy.predict_bin`): the same
   statistic, the verifier's mean score over samples, that the policy's bins were learned from —
   over k samples instead of the sweep's N, so noisier. A problem none of whose probes has a score
   falls in the hardest bin;
3. the policy's choice for that bin at the cell's budget N runs. Problems are grouped by choice
   (strategy, parameters, aggregation) and each group goes through that strategy's own batched
   implementation once. A choice that samples whole solutions independently (best_of_n,
   majority: `StrategyParams.independent_samples`) takes the probes as its first candidates and
   samples only N − k more (with k ≥ N, its candidates are the first N probes); any other
   strategy runs in full at N, and its tree is grafted under the probes'.

Accounting: the probes are `completion` nodes of the problem's tree, so their tokens are charged
to it (generated tokens and FLOPs, charged and computed) whether or not they become candidates:
at a budget N, an adaptive cell costs what its choices cost plus the probes no choice reused, and
the frontier compares it with fixed strategies at the same N and at matched FLOPs.
Selection: the candidates are judged naive / weighted / majority like every cell's; the method a
policy chose per bin is in the policy (a verdict applies one method to a whole cell).

Symbols: N → `n`, k → `probes`. Model calls per shard: 1 probe call + 1 verifier call, then those
of each group's strategy (one group per distinct choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ttscale.policy import Policy, PolicyChoice, parse_policy
from ttscale.strategies import register, run_strategy
from ttscale.strategies.common import SearchContext, candidate_score, make_candidate, sample_whole
from ttscale.strategy_params import AdaptiveParams
from ttscale.tree import Node, Problem, ProblemResult


def predicted_bin(ctx: SearchContext, policy: Policy, probes: Sequence[Node]) -> int:
    """The bin of a problem from its probes: the mean of their scores (the hardest bin if none has one)."""
    scores = [s for node in probes if (s := candidate_score(ctx, node.scores)) is not None]
    return policy.predict_bin(sum(scores) / len(scores)) if scores else policy.predictor.bins[-1].bin


def graft(into: ProblemResult, sub: ProblemResult) -> None:
    """Append `sub`'s tree (node ids, parents and leaves shifted), candidates and counts to `into`."""
    offset = len(into.nodes)
    for node in sub.nodes:
        node.id += offset
        node.parent = None if node.parent is None else node.parent + offset
        into.nodes.append(node)
    for c in sub.candidates:
        into.candidates.append(replace(c, index=len(into.candidates), leaf=c.leaf + offset))
    into.n_prompt_tokens += sub.n_prompt_tokens
    into.n_prompt_tokens_computed += sub.n_prompt_tokens_computed
    into.n_verifier_tokens += sub.n_verifier_tokens
    into.n_policy_calls += sub.n_policy_calls
    assert into.n_generated_tokens is not None and sub.n_generated_tokens is not None
    into.n_generated_tokens += sub.n_generated_tokens


def _run_group(
    ctx: SearchContext, problems: Sequence[Problem], results: Sequence[ProblemResult], probes: Sequence[list[Node]],
    n: int, choice: PolicyChoice,
) -> None:  # fmt: skip
    """Run one choice on its problems (batched), adding to their results."""
    sub = replace(ctx, aggregation=choice.aggregation)  # a fresh score cache, the choice's aggregation
    if choice.strategy.independent_samples:
        more = sample_whole(sub, problems, results, [max(0, n - len(p)) for p in probes])
        for res, old, new in zip(results, probes, more, strict=True):
            for node in (old + new)[:n]:
                res.candidates.append(make_candidate(sub, res, len(res.candidates), node.id, node.scores))
        return
    for res, got in zip(results, run_strategy(problems, n, choice.strategy, sub), strict=True):
        graft(res, got)


@register(AdaptiveParams)
def adaptive(problems: Sequence[Problem], n: int, params: AdaptiveParams, ctx: SearchContext) -> list[ProblemResult]:
    policy = parse_policy(params.policy, source="adaptive.policy")
    results = [ProblemResult(p.id, [], []) for p in problems]
    probes = sample_whole(ctx, problems, results, [params.probes] * len(problems))
    groups: dict[tuple[str, str], list[int]] = {}
    choices: dict[tuple[str, str], PolicyChoice] = {}
    for i, mine in enumerate(probes):
        choice = policy.choice(predicted_bin(ctx, policy, mine), n)
        key = (choice.strategy.model_dump_json(), choice.aggregation)
        groups.setdefault(key, []).append(i)
        choices[key] = choice
    ctx.report(f"adaptive: {len(problems)} problems probed, {len(groups)} strategies chosen")
    for key, members in groups.items():
        _run_group(ctx, [problems[i] for i in members], [results[i] for i in members], [probes[i] for i in members], n, choices[key])
    return results
