"""Beam search over reasoning steps against a verifier, batched across problems.

Algorithm (Snell et al. 2024 §5.2; search-and-learn `beam_search`): start N paths per
problem; at each iteration every live path samples one more step (stop at a blank line), the
verifier scores each path, paths that end (EOS, an empty step, the token limit, a boxed
answer: `common.is_terminal`) are set aside as finished, identical live paths are dropped, and
of the rest the N/M best by aggregated score survive, N samples spread over them for the next
iteration (M each while N/M survive). The last iteration rolls every path out to the end.
Where the reference and ttscale differ — which tied path survives, which survivor gets the
extra samples, which finished paths are the candidates — the cell's fidelity profile decides
(`ctx.rules`, docs/fidelity.md).
Unlike the reference, which searches one problem at a time (it refuses a search batch ≠ 1),
every iteration is one generate call and one verifier call for all problems of the shard.

Symbols: N → `n`, M → `beam_width`, iterations → `n_iterations`, lookahead k → `lookahead`.
Model calls per shard: ≤ n_iterations × (1 + lookahead) generate calls, as many verifier calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import cycle, islice

from ttscale.strategies import register
from ttscale.strategies.common import Beam, Child, SearchContext, expand, make_candidate
from ttscale.strategy_params import BeamSearchParams
from ttscale.tree import Problem, ProblemResult


def spread(total: int, k: int) -> list[int]:
    """Split `total` samples over `k` survivors as evenly as possible, earlier ones first."""
    return [total // k + (i < total % k) for i in range(k)]


def _score(child: Child) -> float:
    return child.rank if child.rank is not None else 0.0


def survivors(ctx: SearchContext, live: Sequence[Child], keep: int, n: int) -> list[tuple[Beam, int]]:
    """The paths that go on and how many samples each gets, in the order they are sampled.

    ttscale: a stable sort by descending score, so of tied paths the earlier one survives, and
    the best-scored survivors get the extra samples. search-and-learn: the top `keep` of an
    ascending stable argsort taken from the end (of tied paths the later one survives), kept in
    generation order, and the N samples dealt out by cycling through them, one each (the
    reference repeats its list of live beams until it holds N; their children interleave)."""
    if ctx.rules.ties_to_later:
        ascending = sorted(range(len(live)), key=lambda i: _score(live[i]))
        chosen = sorted(ascending[-keep:])
    else:
        chosen = sorted(range(len(live)), key=lambda i: -_score(live[i]))[:keep]
    for i in set(range(len(live))) - set(chosen):
        live[i].node.pruned = True
    paths = [live[i].cont for i in chosen]
    if not paths:
        return []
    if ctx.rules.extra_samples_by == "generation_order":
        return [(p, 1) for p in islice(cycle(paths), n)]
    return list(zip(paths, spread(n, len(paths)), strict=True))


def candidates(ctx: SearchContext, finished: list[Child], n: int) -> list[Child]:
    """ttscale: the N best-scored finished paths (fewer if fewer finished). search-and-learn: the
    first N to finish, repeated in order until there are N."""
    if ctx.rules.beam_candidates == "best_scored":
        return sorted(finished, key=lambda c: -_score(c))[:n]
    if not finished:
        return []
    return list(islice(cycle(finished), n)) if len(finished) < n else finished[:n]


def _distinct(paths: list[Child]) -> list[Child]:
    """The first of each set of identical live paths (the recipes' `filter_duplicates: true`);
    the others are pruned: identical paths would take several of the N/M slots."""
    seen: set[str] = set()
    out = []
    for child in paths:
        assert child.cont is not None
        if child.cont.text in seen:
            child.node.pruned = True
        else:
            seen.add(child.cont.text)
            out.append(child)
    return out


@register(BeamSearchParams)
def beam_search(
    problems: Sequence[Problem], n: int, params: BeamSearchParams, ctx: SearchContext
) -> list[ProblemResult]:
    keep = max(1, n // params.beam_width)
    results = [ProblemResult(p.id, [], []) for p in problems]
    finished: list[list[Child]] = [[] for _ in problems]
    frontier: list[tuple[Beam, int]] = [(Beam(i, None, "", 0), n) for i in range(len(problems))]
    for it in range(params.n_iterations):
        if not frontier:
            break
        grown = expand(
            ctx,
            problems,
            results,
            [b for b, _ in frontier],
            [k for _, k in frontier],
            last_iteration=it == params.n_iterations - 1,
            lookahead=params.lookahead,
            ends_on_boxed=ctx.rules.beam_ends_on_boxed,
            score_lookahead=ctx.rules.beam_scores_lookahead,
        )
        live: list[list[Child]] = [[] for _ in problems]
        for (beam, _), children in zip(frontier, grown, strict=True):
            for child in children:
                (finished if child.cont is None else live)[beam.problem].append(child)
        frontier = []
        for paths in live:
            frontier += survivors(ctx, _distinct(paths), keep, n)
        ctx.report(f"beam search iteration {it + 1}: {len(frontier)} live beams")
    for res, done in zip(results, finished, strict=True):
        for idx, child in enumerate(candidates(ctx, done, n)):
            res.candidates.append(make_candidate(ctx, res, idx, child.node.id, child.path_scores))
    return results
