"""Beam search over reasoning steps against a verifier, batched across problems.

Algorithm (Snell et al. 2024 §5.2; search-and-learn `beam_search`): start N paths per
problem; at each iteration every live path samples one more step (stop at a blank line), the
verifier scores each path, terminal paths (EOS, token limit, empty step, boxed answer) are set
aside as finished, and of the rest the N/M best by aggregated score survive, each sampled M
ways at the next iteration (N total; when fewer than N/M survive, the N samples are spread
over the survivors). The last iteration rolls every path out to the end. Candidates are the
finished paths, best score first, N of them.
Unlike the reference, which searches one problem at a time (it refuses a search batch ≠ 1),
every iteration is one generate call and one verifier call for all problems of the shard.

Symbols: N → `n`, M → `beam_width`, iterations → `n_iterations`, lookahead k → `lookahead`.
Model calls per shard: ≤ n_iterations × (1 + lookahead) generate calls, as many verifier calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.strategies import register
from ttscale.strategies.common import Beam, SearchContext, expand, make_candidate
from ttscale.strategy_params import BeamSearchParams
from ttscale.tree import Problem, ProblemResult


def spread(total: int, k: int) -> list[int]:
    """Split `total` samples over `k` survivors as evenly as possible, earlier ones first."""
    return [total // k + (i < total % k) for i in range(k)]


@register(BeamSearchParams)
def beam_search(
    problems: Sequence[Problem], n: int, params: BeamSearchParams, ctx: SearchContext
) -> list[ProblemResult]:
    keep = max(1, n // params.beam_width)
    results = [ProblemResult(p.id, [], []) for p in problems]
    finished: list[list[tuple[int, float | None, tuple[float, ...]]]] = [[] for _ in problems]
    frontier: list[tuple[Beam, int]] = [(Beam(i, None, "", 0), n) for i in range(len(problems))]
    for it in range(params.n_iterations):
        if not frontier:
            break
        last = it == params.n_iterations - 1
        grown = expand(
            ctx,
            problems,
            results,
            [b for b, _ in frontier],
            [k for _, k in frontier],
            last_iteration=last,
            lookahead=params.lookahead,
        )
        live: list[list[tuple[float | None, int, Beam]]] = [[] for _ in problems]
        for (beam, _), children in zip(frontier, grown, strict=True):
            res = results[beam.problem]
            for node, cont, rank in children:
                if cont is None:
                    path_scores = tuple(s for p in res.path(node.id) for s in p.scores)
                    finished[beam.problem].append((node.id, rank, path_scores))
                else:
                    live[beam.problem].append((rank, node.id, cont))
        frontier = []
        for i, paths in enumerate(live):
            # Stable sort: among equal scores the earlier sample wins, as argsort does in the reference.
            ranked = sorted(paths, key=lambda p: -(p[0] if p[0] is not None else 0.0))
            for _, node_id, _ in ranked[keep:]:
                results[i].nodes[node_id].pruned = True
            survivors = [b for _, _, b in ranked[:keep]]
            frontier += list(zip(survivors, spread(n, len(survivors)), strict=True)) if survivors else []
        ctx.report(f"beam search iteration {it + 1}: {len(frontier)} live beams")
    for res, done in zip(results, finished, strict=True):
        best = sorted(done, key=lambda d: -(d[1] if d[1] is not None else 0.0))[:n]
        for idx, (leaf, _, path_scores) in enumerate(best):
            res.candidates.append(make_candidate(ctx, res, idx, leaf, path_scores))
    return results
