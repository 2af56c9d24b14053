"""Diverse Verifier Tree Search (DVTS), batched across problems.

Algorithm (Beeching, Tunstall & Rush, "Scaling test-time compute with open models", Hugging
Face, Dec 2024; search-and-learn `dvts`): split the budget N into N/M independent subtrees.
At each iteration every live subtree samples M next steps from its current path, the verifier
scores them, and the subtree continues greedily from the best one (the other M-1 are pruned).
A subtree ends when its best step is terminal — EOS, an empty step, the token limit (see the
fidelity profile), a boxed answer — or at the last iteration (which rolls out to the end); its M
final children all become candidates, so the N candidates come in subtree
order and a prefix of them keeps subtrees intact (how the reference scores smaller n).
Independent subtrees keep the diversity that plain beam search loses at large N.

Symbols: N → `n`, M → `beam_width`, iterations → `n_iterations`, lookahead k → `lookahead`.
Model calls per shard: ≤ n_iterations × (1 + lookahead) generate calls, as many verifier calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.strategies import register
from ttscale.strategies.common import Beam, Child, SearchContext, expand, make_candidate
from ttscale.strategy_params import DVTSParams
from ttscale.tree import Problem, ProblemResult


@register(DVTSParams)
def dvts(problems: Sequence[Problem], n: int, params: DVTSParams, ctx: SearchContext) -> list[ProblemResult]:
    m = params.beam_width
    results = [ProblemResult(p.id, [], []) for p in problems]
    # Candidates are collected per (problem, subtree) so their order is subtree order whatever finishes first.
    leaves: dict[tuple[int, int], list[Child]] = {}
    live: list[tuple[int, Beam]] = [(t, Beam(i, None, "", 0)) for i in range(len(problems)) for t in range(n // m)]
    for it in range(params.n_iterations):
        if not live:
            break
        last = it == params.n_iterations - 1
        grown = expand(
            ctx, problems, results, [b for _, b in live], [m] * len(live),
            last_iteration=last, lookahead=params.lookahead, ends_on_boxed=True,
        )  # fmt: skip
        nxt = []
        for (tree_idx, beam), children in zip(live, grown, strict=True):
            # The first of the best on ties, as the reference's np.argmax.
            best = max(range(len(children)), key=lambda j: (children[j].rank or 0.0, -j))
            if children[best].cont is None:
                leaves[(beam.problem, tree_idx)] = children
            else:
                for j, child in enumerate(children):
                    child.node.pruned = j != best
                nxt.append((tree_idx, children[best].cont))
        live = nxt
        ctx.report(f"dvts iteration {it + 1}: {len(live)} live subtrees")
    for i, res in enumerate(results):
        for tree_idx in range(n // m):
            for child in leaves.get((i, tree_idx), []):
                res.candidates.append(make_candidate(ctx, res, len(res.candidates), child.node.id, child.path_scores))
    return results
