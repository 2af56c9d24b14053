"""Particle filtering over reasoning steps, batched across problems.

Algorithm (Puri et al. 2025, "A Probabilistic Inference Approach to Inference-Time Scaling of
LLMs using Particle-Based Monte Carlo Methods", arXiv 2502.01618, its particle filtering
algorithm; Red Hat's its_hub `ParticleFiltering`): N particles per problem start at the empty
answer. Each iteration every live particle samples one more step (stop at a blank line) and the
verifier scores its path; then all N particles of the problem — finished ones too, with their
final reward — are weighted w = softmax(logit(r) / τ) and N are drawn from them with
replacement (multinomial resampling). A drawn live particle goes on from its path (a particle
drawn k times is k particles, sampled as one request with n = k); a drawn finished particle
stays finished, so it may be copied or dropped by later draws, as the paper keeps finished
particles in the population. A problem is done once all its particles have ended; that final
population is not resampled again (the paper returns the particles as they end; its_hub draws
once more) and its N particles, in order, are the candidates — a finished particle drawn twice
is two candidates with the same leaf, since the population is the estimate and each copy counts
in weighted and majority votes.

The reward r of a particle is the cell's aggregation of its path's step scores (`ctx.aggregation`):
under `last`, the default, the verifier's score of the newest step given the whole path — the
paper's model-based aggregation, which its ablation found best; `min` and `prod` are the other
aggregations it compared. r is clipped to [1e-7, 1 - 1e-7] before the logit, as its_hub does; with
τ = 1 the weights are proportional to the odds r / (1 - r). A particle ends where a beam search
path ends (`common.is_terminal`: EOS, an empty step, the token limit, a boxed answer); the last
iteration rolls every live particle out to the end.

Randomness: the draws of a problem come from `particle_rng(cell seed, problem id)`, so given the
engine's outputs a run is reproducible, and a problem draws the same whatever else is in its
shard. Tree: every step of every particle is a `step` node; `Node.weight` is its share of the
population at the last weighing it took part in; a node no draw picked is `pruned`.

Symbols: N → `n` (particles), τ → `resample_temperature`, the step limit → `n_iterations`.
Budget: at most N steps sampled per iteration, as beam search's N; every generated token is
charged to a node (FLOPs charged and computed as for beam search).
Model calls per shard: ≤ n_iterations generate calls, as many verifier calls.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from ttscale.strategies import register
from ttscale.strategies.common import Beam, SearchContext, expand, make_candidate
from ttscale.strategy_params import ParticleFilteringParams
from ttscale.tree import Problem, ProblemResult

_CLIP = 1e-7
"""Rewards are clipped to [_CLIP, 1 - _CLIP] before the logit (its_hub's `_inv_sigmoid`)."""


@dataclass(frozen=True)
class Particle:
    node: int | None
    """Its leaf node (None before the first step)."""
    cont: Beam | None
    """The path it goes on from; None once it has ended."""
    reward: float
    path_scores: tuple[float, ...]


def weights(rewards: Sequence[float], temperature: float) -> list[float]:
    """softmax(logit(r) / τ) of each reward r in [0, 1]: with τ = 1, proportional to r / (1 - r).
    A NaN reward (a verifier that could not score) counts as the lowest."""
    clipped = (_CLIP if math.isnan(x) else min(max(x, _CLIP), 1.0 - _CLIP) for x in rewards)
    logits = [math.log(r / (1.0 - r)) / temperature for r in clipped]
    top = max(logits)
    unnormalised = [math.exp(x - top) for x in logits]
    total = sum(unnormalised)
    return [x / total for x in unnormalised]


def resample(weights: Sequence[float], uniforms: Sequence[float]) -> list[int]:
    """The particle each uniform u in [0, 1) draws: the first i whose cumulative weight exceeds
    u × the total (inverse-CDF multinomial resampling, one draw per uniform, in order)."""
    cumulative = list(accumulate(weights))
    return [min(bisect_right(cumulative, u * cumulative[-1]), len(weights) - 1) for u in uniforms]


def particle_rng(seed: int, problem_id: str) -> random.Random:
    """The generator of one problem's draws: seeded by the cell's seed and the problem's id only."""
    return random.Random(f"particle_filtering\x1f{seed}\x1f{problem_id}")


def _weigh(res: ProblemResult, population: Sequence[Particle], w: Sequence[float]) -> None:
    """Record each node's share of the population (copies of one finished particle summed)."""
    share: dict[int, float] = defaultdict(float)
    for particle, wi in zip(population, w, strict=True):
        assert particle.node is not None
        share[particle.node] += wi
    for node, total in share.items():
        res.nodes[node].weight = total


def _draw(res: ProblemResult, population: list[Particle], w: Sequence[float], rng: random.Random) -> list[Particle]:
    """N particles drawn from `population`; the nodes no draw picked are pruned."""
    drawn = resample(w, [rng.random() for _ in population])
    kept = {population[d].node for d in drawn}
    for particle in population:
        if particle.node not in kept:
            res.nodes[particle.node].pruned = True
    return [population[d] for d in drawn]


@register(ParticleFilteringParams)
def particle_filtering(
    problems: Sequence[Problem], n: int, params: ParticleFilteringParams, ctx: SearchContext
) -> list[ProblemResult]:
    results = [ProblemResult(p.id, [], []) for p in problems]
    rngs = [particle_rng(ctx.seed, p.id) for p in problems]
    population = [[Particle(None, Beam(i, None, "", 0), 0.5, ())] * n for i in range(len(problems))]
    for it in range(params.n_iterations):
        # Particles on the same path (copies of one draw) are one request for that many samples.
        slots: dict[tuple[int, int | None], list[int]] = defaultdict(list)
        for i, particles in enumerate(population):
            for j, particle in enumerate(particles):
                if particle.cont is not None:
                    slots[(i, particle.node)].append(j)
        if not slots:
            break
        keys = list(slots)
        grown = expand(
            ctx, problems, results, [population[i][slots[(i, node)][0]].cont for i, node in keys], [len(slots[k]) for k in keys],
            last_iteration=it == params.n_iterations - 1, lookahead=0, ends_on_boxed=True,
        )  # fmt: skip
        for (i, node), children in zip(keys, grown, strict=True):
            for j, child in zip(slots[(i, node)], children, strict=True):
                # Without a verifier every reward is 0.5: uniform draws.
                reward = child.rank if child.rank is not None else 0.5
                population[i][j] = Particle(child.node.id, child.cont, reward, child.path_scores)
        for i in sorted({i for i, _ in keys}):
            w = weights([p.reward for p in population[i]], params.resample_temperature)
            _weigh(results[i], population[i], w)
            if any(p.cont is not None for p in population[i]):
                population[i] = _draw(results[i], population[i], w, rngs[i])
        live = sum(p.cont is not None for particles in population for p in particles)
        ctx.report(f"particle filtering iteration {it + 1}: {live} live particles")
    for res, particles in zip(results, population, strict=True):
        for idx, particle in enumerate(particles):
            assert particle.node is not None
            res.candidates.append(make_candidate(ctx, res, idx, particle.node, particle.path_scores))
    return results
