"""Strategies on the scripted policy and verifier: shapes, tree invariants, batching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.scripted import context, problems
from ttscale.strategy_params import BeamSearchParams, BestOfNParams, DVTSParams, MajorityParams, RolloutParams, SelfRefineParams
from ttscale.strategies import load_strategy
from ttscale.tree import check_tree


def run(name, params, n, count=3, **ctx_kwargs):
    ctx = context(**ctx_kwargs)
    results = load_strategy(name)(problems(count), n, params, ctx)
    for r in results:
        check_tree(r)
    return results, ctx


def test_best_of_n_samples_n_in_one_call_per_shard():
    results, ctx = run("best_of_n", BestOfNParams(), 8, count=5)
    assert [len(r.candidates) for r in results] == [8] * 5
    assert ctx.policy.calls == [(5, 8)]  # one batched call for all problems
    for r in results:
        for c in r.candidates:
            assert c.score == c.step_scores[-1]  # `last` aggregation
            assert len(c.step_scores) == 4  # three steps and the answer line


def test_greedy_asks_for_each_copy_at_n_1():
    # vLLM refuses n > 1 with temperature 0: the copies go in as separate prompts, still one call.
    results, ctx = run("best_of_n", BestOfNParams(), 4, count=3, temperature=0.0)
    assert [len(r.candidates) for r in results] == [4] * 3
    assert ctx.policy.calls == [(12, 1)]


def test_majority_without_verifier_has_no_scores():
    results, _ = run("majority", MajorityParams(), 4, verifier=False)
    assert all(c.score is None and c.step_scores == () for r in results for c in r.candidates)


@given(n_exp=st.integers(0, 3), m_exp=st.integers(0, 2), count=st.integers(1, 4), iters=st.integers(1, 6))
@settings(max_examples=25, deadline=None)
def test_beam_search_keeps_width_and_batches(n_exp, m_exp, count, iters):
    m = 2**m_exp
    n = m * 2**n_exp
    results, ctx = run("beam_search", BeamSearchParams(beam_width=m, n_iterations=iters), n, count=count)
    # One generate call per iteration for all problems (uneven spreads may split it by n).
    assert len(ctx.policy.calls) <= iters * 2
    for r in results:
        assert len(r.candidates) <= n and r.candidates
        by_depth: dict[int, list] = {}
        for node in r.nodes:
            by_depth.setdefault(node.depth, []).append(node)
        for depth, nodes in by_depth.items():
            assert len(nodes) <= n  # N generations per step
            survivors = [x for x in nodes if not x.pruned and any(y.parent == x.id for y in r.nodes)]
            assert len(survivors) <= max(1, n // m)  # N/M beams kept per depth
        scores = [c.score for c in r.candidates]
        assert scores == sorted(scores, reverse=True)


def test_beam_search_reaches_boxed_answers():
    results, _ = run("beam_search", BeamSearchParams(beam_width=2, n_iterations=10), 4)
    for r in results:
        assert len(r.candidates) == 4
        assert all("\\boxed" in c.text for c in r.candidates)
        assert all(c.text.count("\n\n") == 3 for c in r.candidates)


def test_dvts_candidates_come_in_intact_subtrees():
    n, m = 8, 4
    results, _ = run("dvts", DVTSParams(beam_width=m, n_iterations=10), n)
    for r in results:
        assert len(r.candidates) == n
        parents = [r.nodes[c.leaf].parent for c in r.candidates]
        # Each block of M candidates shares one parent path: a subtree's final expansion.
        for block in range(n // m):
            assert len(set(parents[block * m : (block + 1) * m])) == 1
        assert len(set(parents)) == n // m


def test_self_refine_keeps_every_round():
    rounds, n = 2, 3
    results, ctx = run("self_refine", SelfRefineParams(n_rounds=rounds), n, count=2)
    assert len(ctx.policy.calls) == 1 + rounds
    for r in results:
        assert len(r.nodes) == n * (rounds + 1)
        assert len(r.candidates) == n
        assert all(r.nodes[c.leaf].depth == rounds and r.nodes[c.leaf].kind == "revision" for c in r.candidates)
        assert all(c.text.startswith("Revised") for c in r.candidates)


@pytest.mark.parametrize(
    "name,params",
    [("best_of_n", BestOfNParams()), ("beam_search", BeamSearchParams(beam_width=2, n_iterations=5)),
     ("dvts", DVTSParams(beam_width=2, n_iterations=5)), ("self_refine", SelfRefineParams(n_rounds=1))],
)
def test_greedy_decoding_gives_the_same_tree_twice(name, params):
    a, _ = run(name, params, 4, temperature=0.0)
    b, _ = run(name, params, 4, temperature=0.0)
    assert a == b


def test_token_counts_add_up():
    results, _ = run("beam_search", BeamSearchParams(beam_width=2, n_iterations=6, lookahead=1), 4)
    for r in results:
        assert r.n_generated_tokens == sum(x.n_generated_tokens + x.n_lookahead_tokens for x in r.nodes)
        assert any(x.n_lookahead_tokens > 0 for x in r.nodes)
        for c in r.candidates:
            assert c.n_generated_tokens == sum(x.n_generated_tokens for x in r.path(c.leaf))


def test_verifier_scores_each_prefix_once():
    results, ctx = run("beam_search", BeamSearchParams(beam_width=2, n_iterations=6), 4)
    inner = ctx.verifier
    total_scored = sum(inner.calls)
    distinct_prefixes = {(r.problem_id, tuple(x.id for x in r.path(n.id))) for r in results for n in r.nodes}
    assert total_scored <= len(distinct_prefixes)
    assert ctx.cached_verifier.n_cached_steps > 0


def test_a_strategy_refuses_another_strategys_parameters():
    with pytest.raises(TypeError, match="strategy best_of_n needs BestOfNParams, got MajorityParams"):
        run("best_of_n", MajorityParams(), 2)


def test_rollout_continues_every_prefix_of_every_problem_in_one_call():
    prefixes = {"p0": (("step 0 sample 5: 0 + 5 = 5",), ("a", "b")), "p2": (("c",),)}
    results, ctx = run("rollout", RolloutParams(prefixes=prefixes), 3, count=3, verifier=False)
    assert ctx.policy.calls == [(3, 3)]  # three prefixes × n=3, one batched call; p1 has none
    assert [len(r.candidates) for r in results] == [6, 0, 3] and results[1].nodes == []
    for r in results:
        roots = [x for x in r.nodes if x.kind == "prefix"]
        assert all(x.n_generated_tokens == 0 and x.parent is None for x in roots)  # given text, nothing generated
        for c in r.candidates:
            prefix, leaf = r.path(c.leaf)
            assert prefix.kind == "prefix" and leaf.kind == "completion" and c.text == prefix.text + leaf.text
            assert c.n_generated_tokens == leaf.n_generated_tokens > 0 and c.n_prompt_tokens == leaf.n_prompt_tokens > 0
            assert c.score is None and c.step_scores == ()
        assert r.n_generated_tokens == sum(c.n_generated_tokens for c in r.candidates)
    texts = [c.text for c in results[0].candidates]
    assert texts[0].startswith("step 0 sample 5: 0 + 5 = 5\n\nstep 1 sample 0") and texts[3].startswith("a\n\nb\n\nstep 2 sample")
    # a prompt is charged once per request (one per prefix), as any strategy's
    first, second = results[0].candidates[0], results[0].candidates[3]
    assert results[0].n_policy_calls == 2 and results[0].n_prompt_tokens == first.n_prompt_tokens + second.n_prompt_tokens
