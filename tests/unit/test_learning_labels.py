"""Step labels from hand-built trees (hard and soft Math-Shepherd estimates, worked by hand), and
the problem split: stable, by problem, nothing shared between splits."""

from __future__ import annotations

import polars as pl
import pytest

from ttscale.learning.labels import STEP_SCHEMA, step_rows
from ttscale.learning.split import DEFAULT_FRACTIONS, SPLITS, check_fractions, split_of


def frames(trees: dict, *, models: dict[str, str] | None = None, served: dict[str, str] | None = None,
           strategies: dict[str, str] | None = None):  # fmt: skip
    """Store-shaped frames from {cell_id: {problem_id: (nodes, candidates)}}; nodes are
    (node_id, parent, kind, text), candidates (idx, leaf, text, correct)."""
    models = models or {}
    served = served or {}
    strategies = strategies or {}
    cells = pl.DataFrame(
        {"cell_id": list(trees), "model": [models.get(c, "m") for c in trees], "strategy": [strategies.get(c, "beam_search") for c in trees],
         "source_cell_id": [served.get(c) for c in trees]},
        schema={"cell_id": pl.String, "model": pl.String, "strategy": pl.String, "source_cell_id": pl.String},
    )  # fmt: skip
    runs, nodes, cands, problems = [], [], [], {}
    for cell, by_problem in trees.items():
        for pid, (ns, cs) in by_problem.items():
            runs.append({"cell_id": cell, "problem_id": pid, "dataset": "toy"})
            problems[pid] = {"dataset": "toy", "problem_id": pid, "text": f"text of {pid}"}
            nodes += [{"cell_id": cell, "problem_id": pid, "node_id": i, "parent_id": p, "kind": k, "text": t} for i, p, k, t in ns]
            cands += [{"cell_id": cell, "problem_id": pid, "idx": i, "leaf_node": leaf, "text": t, "correct": ok} for i, leaf, t, ok in cs]
    node_schema = {"cell_id": pl.String, "problem_id": pl.String, "node_id": pl.Int64, "parent_id": pl.Int64, "kind": pl.String, "text": pl.String}
    cand_schema = {"cell_id": pl.String, "problem_id": pl.String, "idx": pl.Int64, "leaf_node": pl.Int64, "text": pl.String, "correct": pl.Boolean}
    return (
        cells,
        pl.DataFrame(runs),
        pl.DataFrame(list(problems.values())),
        pl.DataFrame(cands, schema=cand_schema),
        pl.DataFrame(nodes, schema=node_schema),
    )


def by_steps(rows: pl.DataFrame) -> dict[tuple[str, ...], dict]:
    return {tuple(r["steps"]): r for r in rows.iter_rows(named=True)}


# A beam-search tree of one problem: two roots, A kept and B pruned; A grows C (then F) and D,
# whose final roll-out wrote two steps ("D", "E") in one node.
#
#   A ── C ── F      candidate 0 = A C F, right
#   │
#   └── D E          candidate 1 = A D E, wrong
#   B                pruned: nothing below it
BEAM = (
    [(0, None, "step", "A\n\n"), (1, None, "step", "B\n\n"), (2, 0, "step", "C\n\n"), (3, 0, "step", "D\n\nE"), (4, 2, "step", "F")],
    [(0, 4, "A\n\nC\n\nF", True), (1, 3, "A\n\nD\n\nE", False)],
)


def test_tree_nodes_are_labelled_from_the_candidates_below_them():
    rows = step_rows(*frames({"beam": {"p": BEAM}}))
    got = by_steps(rows)
    assert rows.schema == pl.Schema(STEP_SCHEMA)
    # (steps): (n_candidates, n_correct, hard, soft, n_nodes, is_final), by hand
    expected = {
        ("A",): (2, 1, True, 0.5, 1, False),
        ("B",): (0, 0, None, None, 1, False),  # pruned: unlabelled
        ("A", "C"): (1, 1, True, 1.0, 1, False),
        ("A", "C", "F"): (1, 1, True, 1.0, 1, True),
        ("A", "D"): (1, 0, False, 0.0, 0, False),  # a prefix inside node 3, from candidate 1
        ("A", "D", "E"): (1, 0, False, 0.0, 1, True),
    }
    assert set(got) == set(expected)
    for steps, (n, c, hard, soft, n_nodes, final) in expected.items():
        r = got[steps]
        assert (r["n_candidates"], r["n_correct"], r["label_hard"], r["label_soft"], r["n_nodes"], r["is_final"]) == (
            n, c, hard, soft, n_nodes, final,
        ), steps  # fmt: skip
        assert r["n_steps"] == len(steps) and r["problem"] == "text of p" and r["model"] == "m"


def test_best_of_n_completions_give_one_row_per_step_prefix_soft_over_shared_prefixes():
    # Three whole completions (one node each): two share their first step X.
    bon = (
        [(0, None, "completion", "X\n\nY"), (1, None, "completion", "X\n\nZ"), (2, None, "completion", "W")],
        [(0, 0, "X\n\nY", True), (1, 1, "X\n\nZ", False), (2, 2, "W", False)],
    )
    got = by_steps(step_rows(*frames({"bon": {"p": bon}})))
    assert {k: (v["label_hard"], v["label_soft"], v["n_candidates"], v["is_final"]) for k, v in got.items()} == {
        ("X",): (True, 0.5, 2, False),
        ("X", "Y"): (True, 1.0, 1, True),
        ("X", "Z"): (False, 0.0, 1, True),
        ("W",): (False, 0.0, 1, True),
    }


def test_a_prefix_reached_by_two_cells_of_one_model_pools_their_candidates_once_each():
    one = ([(0, None, "completion", "X\n\nY")], [(0, 0, "X\n\nY", True)])
    two = ([(0, None, "completion", "X\n\nQ"), (1, None, "completion", "X\n\nQ")], [(0, 0, "X\n\nQ", False), (1, 1, "X\n\nQ", False)])
    got = by_steps(step_rows(*frames({"c1": {"p": one}, "c2": {"p": two}})))
    assert (got[("X",)]["n_candidates"], got[("X",)]["n_correct"], got[("X",)]["n_cells"]) == (3, 1, 2)
    assert got[("X",)]["label_soft"] == pytest.approx(1 / 3)
    assert got[("X", "Q")]["n_candidates"] == 2 and got[("X", "Q")]["n_nodes"] == 2
    # another policy model's continuations are other evidence: not pooled
    other = step_rows(*frames({"c1": {"p": one}, "c2": {"p": two}}, models={"c2": "other"}))
    x = other.filter(pl.col("steps") == ["X"]).sort("model")
    assert x.select("model", "n_candidates", "n_correct").rows() == [("m", 1, 1), ("other", 2, 0)]


def test_served_cells_and_ungraded_candidates_add_nothing():
    one = ([(0, None, "completion", "X")], [(0, 0, "X", True)])
    ungraded = ([(0, None, "completion", "X"), (1, None, "completion", "V")], [(0, 0, "X", None), (1, 1, "V", False)])
    rows = step_rows(*frames({"c1": {"p": one}, "small": {"p": one}, "c3": {"p": ungraded}}, served={"small": "c1"}))
    got = by_steps(rows)
    assert (got[("X",)]["n_candidates"], got[("X",)]["n_cells"]) == (1, 2)  # c1's candidate; c3's node, ungraded
    assert got[("V",)]["label_soft"] == 0.0


def test_every_step_of_a_problem_lands_in_its_problems_split():
    trees = {"bon": {f"p{i}": ([(0, None, "completion", f"s{i}\n\nt")], [(0, 0, f"s{i}\n\nt", i % 2 == 0)]) for i in range(40)}}
    rows = step_rows(*frames(trees))
    per_problem = rows.group_by("problem_id").agg(pl.col("split").n_unique().alias("k"), pl.col("split").first())
    assert per_problem["k"].max() == 1
    assert all(r["split"] == split_of(r["problem_id"]) for r in per_problem.iter_rows(named=True))


def test_split_is_a_stable_function_of_the_problem_id_with_the_given_shares():
    ids = [f"ladder-s0-{i:05d}" for i in range(4000)]
    first = [split_of(pid) for pid in ids]
    assert first == [split_of(pid) for pid in reversed(ids)][::-1]  # independent of order and of other ids
    shares = [first.count(name) / len(ids) for name in SPLITS]
    assert shares == pytest.approx(list(DEFAULT_FRACTIONS), abs=0.03)
    assert [split_of(pid, (0.5, 0.25, 0.25)) for pid in ids[:200]] != first[:200]
    salted = [split_of(pid, salt="other") for pid in ids]
    assert salted != first and abs(salted.count("train") / len(ids) - DEFAULT_FRACTIONS[0]) < 0.03
    assert {split_of(pid, (1.0, 0.0, 0.0)) for pid in ids} == {"train"}


@pytest.mark.parametrize(
    "fractions,error",
    [((0.7, 0.3), "give 3 fractions"), ((0.8, 0.3, -0.1), ">= 0"), ((0.0, 0.5, 0.5), "train > 0"), ((0.5, 0.2, 0.2), "sum to 1")],
)
def test_bad_split_fractions_are_refused(fractions, error):
    assert error in check_fractions(fractions)
    assert check_fractions((0.6, 0.2, 0.2)) is None


def test_stepwise_supervision_rows_are_each_longest_labelled_solution_with_its_prefix_labels():
    from ttscale.learning.dataset import stepwise_supervision

    got = stepwise_supervision(step_rows(*frames({"beam": {"p": BEAM}})))
    assert sorted(zip(got["completions"].to_list(), got["labels"].to_list())) == [
        (["A", "C", "F"], [True, True, True]),
        (["A", "D", "E"], [True, False, False]),  # A is good (C follows it), D is not
    ]  # B, pruned with nothing below it, has no label and no row
    assert set(got["prompt"]) == {"text of p"} and set(got["split"]) == {split_of("p")}
