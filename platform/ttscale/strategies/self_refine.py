"""Self-refinement: the model revises its own answer for R rounds (Madaan et al. 2023,
"Self-Refine"; the sequential-revision axis of Snell et al. 2024 §6).

Algorithm: sample N first answers per problem (N independent chains); in each of R rounds,
every chain is shown its previous answer and asked to check and rewrite it. Every round is a
`revision` node whose parent is the previous round, so the tree keeps the whole history; the
N candidates are the chains' final answers. A verifier, if given, scores every round (for
weighted selection and for reading off which rounds helped).

Symbols: N → `n`, R → `n_rounds`. Model calls per shard: 1 + R generate calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.strategies import register
from ttscale.strategies.common import Request, SearchContext, add_node, generate, make_candidate, score_solutions
from ttscale.strategy_params import SelfRefineParams
from ttscale.tree import Problem, ProblemResult


@register(SelfRefineParams)
def self_refine(
    problems: Sequence[Problem], n: int, params: SelfRefineParams, ctx: SearchContext
) -> list[ProblemResult]:
    results = [ProblemResult(p.id, [], []) for p in problems]
    first = generate(ctx, problems, results, [Request(i, "", n) for i in range(len(problems))], step=False)
    chains = [(i, c, None) for i, row in enumerate(first) for c in row]  # (problem, completion, parent node)
    kind = "completion"
    for round_ in range(params.n_rounds + 1):
        if round_ > 0:
            requests = [
                Request(i, "", 1, prompt=ctx.prompts.revise(problems[i].text, results[i].nodes[parent].text))
                for i, _, parent in chains
            ]
            got = generate(ctx, problems, results, requests, step=False)
            chains = [(i, row[0], parent) for (i, _, parent), row in zip(chains, got, strict=True)]
            kind = "revision"
        scores = score_solutions(
            ctx, [problems[i].text for i, _, _ in chains], [c.text for _, c, _ in chains], [results[i] for i, _, _ in chains]
        )
        nodes = []
        for (i, c, parent), s in zip(chains, scores, strict=True):
            depth = 0 if parent is None else results[i].nodes[parent].depth + 1
            node = add_node(
                results[i],
                parent=parent,
                depth=depth,
                text=c.text,
                kind=kind,
                n_prompt_tokens=c.n_prompt_tokens,
                n_generated_tokens=c.n_generated_tokens,
                n_cached_prompt_tokens=c.n_cached_prompt_tokens,
                scores=s,
                finish_reason=c.finish_reason,
            )
            nodes.append(node)
        chains = [(i, c, node.id) for (i, c, _), node in zip(chains, nodes, strict=True)]
        ctx.report(f"self-refine round {round_}: {len(chains)} chains")
    for i, _, leaf in chains:
        res = results[i]
        res.candidates.append(make_candidate(ctx, res, len(res.candidates), leaf, res.nodes[leaf].scores))
    return results
