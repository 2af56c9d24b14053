"""Particle filtering on the scripted policy and verifier: resampling derived by hand, the tree's
invariants, batching and reproducibility."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale.backends.scripted import ScriptedPolicy
from ttscale.prompting import PromptBuilder
from ttscale.spec import SamplingParams
from ttscale.strategies import load_strategy
from ttscale.strategies.common import SearchContext
from ttscale.strategies.particle_filtering import particle_rng, resample, weights
from ttscale.strategy_params import ParticleFilteringParams
from ttscale.tree import Problem, check_tree
from ttscale.verifiers.scripted import ScriptedVerifier
from tests.scripted import ASSISTANT, context, problems

FIRST = ["A\n\n", "B\n\n", "C\n\n", "D \\boxed{4}"]
SCORE = {"A": 0.5, "B": 0.8, "C": 0.2, "D \\boxed{4}": 0.5, "B0": 0.2, "B1": 0.9, "B2": 0.5,
         "\\boxed{1}": 0.75, "\\boxed{2}": 0.5, "\\boxed{3}": 0.5}  # fmt: skip


def three_steps(prompt: str, k: int) -> str:
    """Step 1 of sample k is A, B, C or D (D ends at once with a boxed answer); step 2 is the
    letter followed by k; step 3 is `\\boxed{k+1}`, ending the path."""
    path = prompt.rsplit(ASSISTANT, 1)[-1]
    done = path.split("\n\n")[:-1]
    if not done:
        return FIRST[k % 4]
    if len(done) == 1:
        return f"{done[0]}{k}\n\n"
    return f"\\boxed{{{k + 1}}}"


def hand_context() -> SearchContext:
    policy = ScriptedPolicy(three_steps)
    return SearchContext(
        policy=policy,
        prompts=PromptBuilder(chat=policy.chat_prompt, format="chat"),
        sampling=SamplingParams(temperature=0.8, max_tokens=50, step_max_tokens=20),
        verifier=ScriptedVerifier(lambda problem, steps: SCORE[steps[-1]]),
        seed=0,
    )


def test_weights_are_the_softmax_of_the_reward_logits():
    # logit(r) = log(r / (1 - r)): odds 1, 4, 1/4, 1, total 6.25.
    assert weights([0.5, 0.8, 0.2, 0.5], 1.0) == pytest.approx([0.16, 0.64, 0.04, 0.16])
    # τ = 2 takes the square root of the odds: 1, 2, 1/2, 1, total 4.5.
    assert weights([0.5, 0.8, 0.2, 0.5], 2.0) == pytest.approx([1 / 4.5, 2 / 4.5, 0.5 / 4.5, 1 / 4.5])
    # Rewards of exactly 0 and 1 are clipped to 1e-7 and 1 - 1e-7: finite, the 0 all but never drawn.
    w = weights([0.0, 1.0], 1.0)
    assert w[0] == pytest.approx(1e-14, rel=1e-3) and w[1] == pytest.approx(1.0)
    assert weights([float("nan"), 0.0], 1.0) == pytest.approx([0.5, 0.5])  # NaN: the lowest reward


def test_resample_draws_by_inverse_cdf():
    # Cumulative weights 0.16, 0.80, 0.84, 1.00: u = 0.10 → 0, 0.16 → 1 (not below 0.16), 0.81 → 2, 0.99 → 3.
    assert resample([0.16, 0.64, 0.04, 0.16], [0.10, 0.16, 0.81, 0.99, 0.5]) == [0, 1, 2, 3, 1]
    # Unnormalised weights draw the same: u scales with the total.
    assert resample([1, 4, 0.25, 1], [0.10, 0.16, 0.81, 0.99, 0.5]) == [0, 1, 2, 3, 1]


def test_particles_are_resampled_by_their_weights_as_derived_by_hand():
    """Problem p0, N = 4, τ = 1, 3 iterations; the draws' uniforms are `particle_rng(0, "p0")`'s
    first eight: 0.9975, 0.4471, 0.2484, 0.3529 | 0.0302, 0.6180, 0.1768, 0.9358.

    Iteration 1: one request for 4 samples at the root: A (0.5), B (0.8), C (0.2) and D, which
    ends with `\\boxed{4}` (0.5). Odds r/(1-r) 1, 4, 1/4, 1 (total 6.25): weights .16, .64, .04,
    .16, cumulative .16, .80, .84, 1. The uniforms draw D, B, B, B: A and C are pruned; D, though
    finished, stays in the population.
    Iteration 2: B's three copies are one request for 3 samples: B0 (0.2), B1 (0.9), B2 (0.5), in
    slots 1-3; D keeps slot 0 and its reward. Rewards .5, .2, .9, .5, odds 1, 1/4, 9, 1 (total
    11.25): weights .0889, .0222, .8, .0889, cumulative .0889, .1111, .9111, 1. The uniforms draw
    D, B1, B1, B2: B0 is pruned.
    Iteration 3 (the last) rolls out: B1 twice (`\\boxed{1}` 0.75, `\\boxed{2}` 0.5), B2 once
    (`\\boxed{1}` 0.75). All have ended, so the population is weighed (odds 1, 3, 1, 3: weights
    .125, .375, .125, .375) and not drawn again; its four particles, in slot order, are the
    candidates.
    """
    assert [round(x, 4) for x in (lambda r: [r.random() for _ in range(8)])(particle_rng(0, "p0"))] == [
        0.9975, 0.4471, 0.2484, 0.3529, 0.0302, 0.618, 0.1768, 0.9358,
    ]  # fmt: skip
    ctx = hand_context()
    problem = Problem("toy", "p0", "What is 1 + 0?", "1")
    (res,) = load_strategy("particle_filtering")([problem], 4, ParticleFilteringParams(n_iterations=3), ctx)
    check_tree(res)
    texts = [n.text for n in res.nodes]
    assert texts == [*FIRST, "B0\n\n", "B1\n\n", "B2\n\n", "\\boxed{1}", "\\boxed{2}", "\\boxed{1}"]
    assert [n.parent for n in res.nodes] == [None, None, None, None, 1, 1, 1, 5, 5, 6]
    assert [round(n.weight, 4) for n in res.nodes] == [0.16, 0.64, 0.04, 0.125, 0.0222, 0.8, 0.0889, 0.375, 0.125, 0.375]
    assert [i for i, n in enumerate(res.nodes) if n.pruned] == [0, 2, 4]
    assert [c.text for c in res.candidates] == ["D \\boxed{4}", "B\n\nB1\n\n\\boxed{1}", "B\n\nB1\n\n\\boxed{2}", "B\n\nB2\n\n\\boxed{1}"]
    assert [c.leaf for c in res.candidates] == [3, 7, 8, 9]
    assert [c.score for c in res.candidates] == [0.5, 0.75, 0.5, 0.75]
    assert [c.step_scores for c in res.candidates] == [(0.5,), (0.8, 0.9, 0.75), (0.8, 0.9, 0.5), (0.8, 0.5, 0.75)]
    # One engine call per iteration: 4 at the root; 3 from B; B1 twice and B2 once (split to n=1).
    assert ctx.policy.calls == [(1, 4), (1, 3), (3, 1)]
    assert res.n_policy_calls == 4  # root, B, B1, B2
    assert res.n_generated_tokens == sum(n.n_generated_tokens for n in res.nodes)


def test_finished_particles_are_copied_by_draws():
    """Problem p1 draws with `particle_rng(0, "p1")`: 0.5011, 0.9423, 0.3988, 0.2862 pick B, D, B,
    B at iteration 1 (same cumulative weights as p0); iteration 2 gives B0, D, B1, B2 (weights
    .0222, .0889, .8, .0889), and 0.0898, 0.7608, 0.7969, 0.6574 draw D, B1, B1, B1, so the last
    iteration rolls B1 out three times: `\\boxed{1}`, `\\boxed{2}`, `\\boxed{3}`."""
    ctx = hand_context()
    problem = Problem("toy", "p1", "What is 1 + 1?", "2")
    (res,) = load_strategy("particle_filtering")([problem], 4, ParticleFilteringParams(n_iterations=3), ctx)
    check_tree(res)
    assert [c.text for c in res.candidates] == [
        "D \\boxed{4}", "B\n\nB1\n\n\\boxed{1}", "B\n\nB1\n\n\\boxed{2}", "B\n\nB1\n\n\\boxed{3}",
    ]  # fmt: skip
    assert [i for i, n in enumerate(res.nodes) if n.pruned] == [0, 2, 4, 6]


def test_a_problem_draws_the_same_whatever_shares_its_shard():
    both = load_strategy("particle_filtering")(
        [Problem("toy", "p0", "What is 1 + 0?", "1"), Problem("toy", "p1", "What is 1 + 1?", "2")],
        4, ParticleFilteringParams(n_iterations=3), ctx := hand_context(),
    )  # fmt: skip
    alone = load_strategy("particle_filtering")([Problem("toy", "p1", "What is 1 + 1?", "2")], 4, ParticleFilteringParams(n_iterations=3), hand_context())
    # The tree and the candidates (the engine's computed prompt tokens depend on how the batch splits).
    assert (both[1].nodes, both[1].candidates) == (alone[0].nodes, alone[0].candidates)
    # Both problems share every engine call: 2 prompts at the root; p0's and p1's copies of B; then
    # p0's B1 ×2 and B2 ×1 with p1's B1 ×3, split to n = 1 (gcd 1).
    assert ctx.policy.calls == [(2, 4), (2, 3), (6, 1)]


def test_a_finished_particle_drawn_twice_is_two_candidates_on_one_leaf():
    """Sample 0 ends at once with `\\boxed{1}` (0.99, odds 99); samples 1-3 take a step `go k`
    (0.01, odds 1/99 each). Its weight is 99 / (99 + 3/99) ≈ 0.9997, so all four draws (whatever
    the uniforms, short of 1 - 3e-4) copy it: nothing is live after the draw, so there is no second
    iteration and the four candidates are the one finished particle, on one leaf."""

    def ends_or_goes_on(prompt: str, k: int) -> str:
        path = prompt.rsplit(ASSISTANT, 1)[-1]
        if path:
            return "\\boxed{2}"
        return "\\boxed{1}" if k == 0 else f"go {k}\n\n"

    scores = {"\\boxed{1}": 0.99, "\\boxed{2}": 0.5, "go 1": 0.01, "go 2": 0.01, "go 3": 0.01}
    policy = ScriptedPolicy(ends_or_goes_on)
    ctx = SearchContext(policy=policy, prompts=PromptBuilder(chat=policy.chat_prompt, format="chat"),
                        sampling=SamplingParams(max_tokens=50, step_max_tokens=20),
                        verifier=ScriptedVerifier(lambda p, steps: scores[steps[-1]]))  # fmt: skip
    (res,) = load_strategy("particle_filtering")([Problem("toy", "q", "?", "1")], 4, ParticleFilteringParams(n_iterations=2), ctx)
    check_tree(res)
    assert [c.leaf for c in res.candidates] == [0, 0, 0, 0]
    assert res.nodes[0].weight == pytest.approx(99 / (99 + 3 / 99)) and not res.nodes[0].pruned
    assert all(n.pruned for n in res.nodes[1:4]) and len(res.nodes) == 4
    assert len(ctx.policy.calls) == 1  # nothing live after the draw: no second call


@given(n=st.integers(1, 6), count=st.integers(1, 3), iters=st.integers(1, 5), tau=st.sampled_from([0.25, 1.0, 4.0]))
@settings(max_examples=25, deadline=None)
def test_particle_trees_keep_their_invariants(n, count, iters, tau):
    ctx = context()
    results = load_strategy("particle_filtering")(problems(count), n, ParticleFilteringParams(n_iterations=iters, resample_temperature=tau), ctx)
    assert len(ctx.policy.calls) <= iters  # one engine call per iteration for every problem
    for r in results:
        check_tree(r)  # parents, depths, candidate texts, tokens add up, weights in [0, 1]
        assert len(r.candidates) == n
        assert r.n_generated_tokens == sum(x.n_generated_tokens for x in r.nodes)
        for depth in {x.depth for x in r.nodes}:
            assert len([x for x in r.nodes if x.depth == depth]) <= n  # at most N steps per iteration
        assert not any(r.nodes[c.leaf].pruned for c in r.candidates)
        assert all(x.weight is not None for x in r.nodes)
        for c in r.candidates:
            assert c.n_generated_tokens == sum(x.n_generated_tokens for x in r.path(c.leaf))
            assert r.nodes[c.leaf].finish_reason in ("eos", "length") or c.text.count("\\boxed") == 1


def test_greedy_decoding_gives_the_same_particles_twice():
    a = load_strategy("particle_filtering")(problems(2), 4, ParticleFilteringParams(n_iterations=4), context(temperature=0.0))
    b = load_strategy("particle_filtering")(problems(2), 4, ParticleFilteringParams(n_iterations=4), context(temperature=0.0))
    assert a == b
