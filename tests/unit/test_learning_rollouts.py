"""Roll-outs for step labels, pure: which step prefixes get them, the cells that sample them (with
their source cell's settings), and how their candidates pool into the labels — the `rollout`
strategy run on the scripted policy and graded, as a shard would be."""

from __future__ import annotations

import polars as pl
import pytest

from tests.unit.test_learning_labels import BEAM, by_steps, frames
from ttscale.backends.scripted import ScriptedPolicy
from ttscale.errors import SpecError
from ttscale.learning.labels import step_rows
from ttscale.learning.rollout_plan import eligible_prefixes, plan_rollouts, rollout_options
from ttscale.prompting import PromptBuilder
from ttscale.runner import grade
from ttscale.spec import CellSpec, SamplingParams, parse_sweep
from ttscale.strategies import load_strategy
from ttscale.strategies.common import SearchContext
from ttscale.strategy_params import BeamSearchParams, BestOfNParams, RolloutParams
from ttscale.tree import Problem, check_tree


def source_spec(seed: int = 3, strategy=None, verifier: str = "arithmetic") -> str:  # noqa: ANN001
    return CellSpec(
        model="scripted", verifier=verifier, strategy=strategy or BeamSearchParams(beam_width=2, n_iterations=3), n=4,
        dataset={"name": "arith", "limit": 2}, seed=seed, sampling=SamplingParams(temperature=0.7, max_tokens=100, step_max_tokens=20),
    ).canonical_json()  # fmt: skip


def with_specs(cells: pl.DataFrame, specs: dict[str, str]) -> pl.DataFrame:
    return cells.with_columns(pl.Series("spec", [specs.get(c) for c in cells["cell_id"]], dtype=pl.String))


def steps_of(rows: pl.DataFrame) -> list[tuple[str, ...]]:
    return [tuple(s) for s in rows["steps"].to_list()]


def test_prefixes_with_too_few_candidates_below_are_chosen_fewest_first_never_whole_solutions():
    rows = step_rows(*frames({"beam": {"p": BEAM}}), with_cells=True)
    assert steps_of(eligible_prefixes(rows, 1)) == [("B",)]  # the pruned step: nothing below it
    # K=2: B (0 candidates) first, then A C and A D (1 each, in the rows' order); A has 2, and
    # A C F / A D E are whole solutions (a candidate ends there: its grade is their label)
    assert steps_of(eligible_prefixes(rows, 2)) == [("B",), ("A", "C"), ("A", "D")]
    assert eligible_prefixes(rows, 2)["cell_ids"].to_list() == [["beam"]] * 3


def test_roll_out_cells_sample_with_their_source_cells_settings_one_cell_per_setting():
    # Two cells of one setting (beam search and Best-of-N, other verifiers) reach prefix X of p;
    # a third cell differs only in its engine seed.
    one = ([(0, None, "step", "X\n\n")], [])
    other = ([(0, None, "completion", "Q")], [(0, 0, "Q", True)])
    cells, runs, problems, cands, nodes = frames({"b": {"p": one}, "a": {"p": one, "r": other}, "z": {"p": one}})
    specs = {"a": source_spec(strategy=BestOfNParams(), verifier="self"), "b": source_spec(), "z": source_spec(seed=9)}
    cells = with_specs(cells, specs)
    rows = step_rows(cells, runs, problems, cands, nodes, with_cells=True)
    chosen = eligible_prefixes(rows, 1)
    assert chosen.select("model", "problem_id", "steps", "cell_ids").rows() == [("m", "p", ["X"], ["a", "b", "z"])]
    # one row pools the three cells; its source is the first by id
    planned = plan_rollouts(chosen, cells, 4)
    assert [(p.source_cell_ids, p.n_prefixes) for p in planned] == [(("a",), 1)]
    cell, source = planned[0].cell, CellSpec.model_validate_json(specs["a"])
    assert cell.strategy == RolloutParams(prefixes={"p": (("X",),)}) and cell.n == 4 and cell.verifier is None
    assert (cell.model, cell.dataset, cell.seed, cell.sampling, cell.fidelity) == (source.model, source.dataset, source.seed, source.sampling, source.fidelity)

    # Prefixes only z reaches go to a cell of z's seed; planning again gives the same cells.
    only_z = step_rows(cells.filter(pl.col("cell_id") == "z"), runs, problems, cands, nodes, with_cells=True)
    both = pl.concat([chosen, only_z.with_columns(pl.Series("steps", [["X2"]], dtype=pl.List(pl.String)))])
    planned = plan_rollouts(both, cells, 4)
    assert [(p.source_cell_ids, p.cell.seed) for p in planned] == [(("a",), 3), (("z",), 9)]
    assert [p.cell.cell_id for p in plan_rollouts(both, cells, 4)] == [p.cell.cell_id for p in planned]
    assert plan_rollouts(both, cells, 2)[0].cell.cell_id != planned[0].cell.cell_id  # N is part of the cell


def test_roll_outs_label_the_pruned_step_they_continue_and_pool_with_the_tree():
    cells, runs, problems, cands, nodes = frames({"beam": {"p": BEAM}})
    cells = with_specs(cells, {"beam": source_spec()})
    before = step_rows(cells, runs, problems, cands, nodes, with_cells=True)
    planned = plan_rollouts(eligible_prefixes(before, 1), cells, 3)
    assert [p.cell.strategy.prefixes for p in planned] == [{"p": (("B",),)}]

    # The roll-out shard: each continuation adds step X and answers k (the gold answer is 1).
    policy = ScriptedPolicy(lambda prompt, k: f"X\n\nThe answer is \\boxed{{{k}}}")
    ctx = SearchContext(policy=policy, prompts=PromptBuilder(chat=policy.chat_prompt, format="chat"), sampling=SamplingParams())
    problem = Problem("toy", "p", "text of p", "1")
    (result,) = load_strategy("rollout")([problem], 3, planned[0].cell.strategy, ctx)
    check_tree(result)
    grade(problem, result)
    assert policy.calls == [(1, 3)]
    assert [c.text for c in result.candidates] == [f"B\n\nX\n\nThe answer is \\boxed{{{k}}}" for k in range(3)]
    assert [c.correct for c in result.candidates] == [False, True, False]

    tree = ([(n.id, n.parent, n.kind, n.text) for n in result.nodes], [(c.index, c.leaf, c.text, c.correct) for c in result.candidates])
    after = by_steps(step_rows(*frames({"beam": {"p": BEAM}, "roll": {"p": tree}}, strategies={"roll": "rollout"})))
    fields = ("n_candidates", "n_correct", "label_hard", "label_soft", "n_rollout_candidates", "n_nodes")
    assert tuple(after[("B",)][f] for f in fields) == (3, 1, True, pytest.approx(1 / 3), 3, 1)  # the pruned node, labelled now
    assert tuple(after[("B", "X")][f] for f in fields) == (3, 1, True, pytest.approx(1 / 3), 3, 0)  # the continuations' own step
    assert tuple(after[("A",)][f] for f in fields) == (2, 1, True, 0.5, 0, 1)  # the tree's rows keep their candidates
    assert after[("B",)]["n_cells"] == 2


@pytest.mark.parametrize(
    "args,error",
    [
        ((-1, None, None), "--rollouts: must be from 0 to 4096, got -1"),
        ((5000, None, None), "--rollouts: must be from 0 to 4096, got 5000"),
        ((4, 0, None), "--min-candidates: must be >= 1, got 0"),
        ((4, None, 0), "--max-rollout-prefixes: must be >= 1, got 0"),
        ((0, 2, None), "--min-candidates: only with --rollouts N"),
        ((0, None, 5), "--max-rollout-prefixes: only with --rollouts N"),
    ],
)
def test_bad_rollout_options_are_refused_naming_the_option(args, error):
    with pytest.raises(SpecError, match="^" + error.replace("-", "\\-")):
        rollout_options(*args)
    assert rollout_options(4, None, None).min_candidates == 1 and rollout_options(0, None, None).n == 0


@pytest.mark.parametrize(
    "prefixes,error",
    [({}, "at least 1 item"), ({"p": ()}, "at least one prefix"), ({"p": ((),)}, "at least one step"),
     ({"p": (("a\n\nb",),)}, "without a blank line"), ({"p": ((" a",),)}, "stripped"), ({"p": (("a",), ("a",))}, "duplicate")],
)  # fmt: skip
def test_roll_out_prefixes_must_be_steps_as_the_verifiers_split_them(prefixes, error):
    with pytest.raises(ValueError, match=error):
        RolloutParams(prefixes=prefixes)


def test_roll_outs_are_no_strategy_for_a_sweep_and_score_nothing():
    params = {"name": "rollout", "prefixes": {"p": [["a"]]}}
    with pytest.raises(SpecError, match=r"strategies\[0\]: rollout cells are made by `ttscale learn dataset --rollouts`"):
        parse_sweep({"name": "x", "models": ["scripted"], "strategies": [params], "budgets": [2], "datasets": [{"name": "arith"}]})
    with pytest.raises(ValueError, match="verifier: strategy rollout scores nothing"):
        CellSpec(model="scripted", verifier="arithmetic", strategy=params, n=2, dataset={"name": "arith"})
    assert RolloutParams(prefixes={"p": (("a",), ("b", "c"))}).judged_budgets(8) == []  # no verdicts: nothing is selected
