"""Planning a sweep: generation sources, duplicate cells, shards, estimates (pure, no services)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttscale.errors import SpecError
from ttscale.planning import dataset_key, estimate_cell, expand_cells, make_shards, plan_sweep
from ttscale.spec import parse_sweep


def sweep(**overrides):
    data = {
        "name": "plan",
        "models": ["scripted"],
        "verifiers": ["arithmetic"],
        "strategies": [{"name": "best_of_n"}, {"name": "majority"}, {"name": "dvts", "beam_width": 2}, {"name": "beam_search", "beam_width": 2}],
        "budgets": [2, 8, 4],
        "datasets": [{"name": "arith", "limit": 7}],
        "seeds": [0, 1],
        "shard_size": 3,
    }
    return parse_sweep(data | overrides)


def test_smaller_budgets_of_prefix_strategies_are_served_by_the_largest():
    spec = sweep()
    planned = expand_cells(spec)
    assert len(planned) == 4 * 3 * 2
    by_key = {(p.cell.strategy.name, p.cell.n, p.cell.seed): p for p in planned}
    for (name, n, seed), p in by_key.items():
        if name == "beam_search" or n == 8:
            assert p.runs and p.source_cell_id is None, (name, n)
        else:
            # The source is the very cell of the grid at N=8: same model, strategy, verifier, dataset and seed.
            assert p.source_cell_id == by_key[(name, 8, seed)].cell_id
            assert not p.runs
    assert sum(p.runs for p in planned) == (3 + 3) * 2  # 3 strategies at N, beam search at every n; 2 seeds


def test_without_sharing_every_cell_runs():
    planned = expand_cells(sweep(share_generations=False))
    assert all(p.runs for p in planned) and len(planned) == 24


def test_duplicate_cells_are_rejected_naming_the_field():
    with pytest.raises(SpecError) as err:
        expand_cells(sweep(verifiers=["arithmetic", "arithmetic"]))
    message = str(err.value)
    assert message.startswith("verifiers: duplicate entries ['arithmetic']; cell ")
    assert "appears 2 times" in message


def test_shards_skip_stored_problems_and_keep_dataset_order():
    ids = [f"p{i}" for i in range(8)]
    shards = make_shards("c", ids, 3, done={"p1", "p4"})
    assert [s.problem_ids for s in shards] == [("p0", "p2", "p3"), ("p5", "p6", "p7")]
    assert [s.index for s in shards] == [0, 1]
    assert make_shards("c", ids, 3, done=set(ids)) == []


@given(
    n=st.integers(0, 60),
    size=st.integers(1, 20),
    done=st.sets(st.integers(0, 59)),
)
def test_shards_partition_the_problems_left(n, size, done):
    ids = [f"p{i}" for i in range(n)]
    stored = {f"p{i}" for i in done}
    shards = make_shards("c", ids, size, stored)
    flat = [pid for s in shards for pid in s.problem_ids]
    assert flat == [pid for pid in ids if pid not in stored]
    assert all(1 <= len(s.problem_ids) <= size for s in shards)


def test_plan_has_shards_only_for_running_cells_and_missing_problems():
    spec = sweep(seeds=[0])
    ids = [f"arith-{i}" for i in range(7)]
    running = [p for p in expand_cells(spec) if p.runs]
    partly = running[0].cell_id
    plan = plan_sweep(spec, {dataset_key(spec.datasets[0]): ids}, done={partly: {"arith-0", "arith-1", "arith-2", "arith-3"}})
    assert {s.cell_id for s in plan.shards} == {p.cell_id for p in running}
    left = [pid for s in plan.shards if s.cell_id == partly for pid in s.problem_ids]
    assert left == ["arith-4", "arith-5", "arith-6"]
    assert plan.n_problems_left == 7 * (len(running) - 1) + 3
    assert set(plan.estimates) == {p.cell_id for p in running}  # served cells cost nothing
    assert all(plan.problem_ids[p.cell_id] == tuple(ids) for p in plan.cells)


def test_estimates_are_upper_bounds_per_strategy():
    spec = parse_sweep(
        {
            "name": "e",
            "models": ["scripted"],
            "verifiers": ["arithmetic"],
            "strategies": [{"name": "best_of_n"}, {"name": "beam_search", "beam_width": 2, "n_iterations": 5, "lookahead": 1}, {"name": "self_refine", "n_rounds": 2}],
            "budgets": [4],
            "datasets": [{"name": "arith", "limit": 10}],
            "sampling": {"max_tokens": 100, "step_max_tokens": 10},
        }
    )
    cells = {c.strategy.name: c for c in spec.cells() if c.verifier == "arithmetic"}
    bon = estimate_cell(cells["best_of_n"], 10)
    assert (bon.n_problems, bon.n_generations, bon.n_tokens) == (10, 40, 4000)
    # 5 iterations of 4 expansions, each with one lookahead step: 40 sequences; 4 steps of 10
    # tokens (x2 with lookahead) then a roll-out of 100 tokens per path.
    beam = estimate_cell(cells["beam_search"], 10)
    assert (beam.n_generations, beam.n_tokens) == (400, (8 * 4 * 10 + 4 * 100) * 10)
    refine = estimate_cell(cells["self_refine"], 10)
    assert (refine.n_generations, refine.n_tokens) == (120, 120 * 100)
