"""Step labels from stored search trees (Math-Shepherd, Wang et al. 2024, §3.3).

A step's quality is estimated from the candidates that went on from it: with `n` candidates
below a step prefix, `c` of them right,

- hard label (HE): `c > 0` — some continuation reaches the right answer;
- soft label (SE): `c / n` — the share that does.

Rows are distinct step prefixes (model, problem, steps[:k]), steps split as the verifiers
see them (`split_steps`). Two sources feed them:

- every node of a search tree (`step` and `completion` nodes): its path root → node, split
  into steps, labelled from the candidates whose leaf lies in its subtree — a pruned node with
  no candidate below it gets no label (`n_candidates` 0) unless roll-outs are spent on it;
- every prefix of every candidate: Best-of-N trees are single nodes holding whole completions,
  so a completion of k steps gives k prefixes, each labelled from all candidates sharing
  exactly that prefix (for a one-step prefix of a short arithmetic problem, often several).

Roll-out cells (strategy `rollout`, `learning.rollout_plan`) add candidates only: each is a
prefix and its continuation, so it labels that prefix and every prefix of it through the second
source; their trees add no nodes (a `prefix` node is no step the policy wrote). A row counts its
roll-out candidates apart (`n_rollout_candidates`).

A prefix reached twice — by a node and by its candidates' prefixes, by two cells of the same
model, by two samples that agree — is one row pooling its candidates (each counted once), as
Math-Shepherd pools the completions it samples from a step. Rows group by the cell's policy
model: continuations of another model are other evidence. Pure: frames in, a frame out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from ttscale.learning.split import DEFAULT_FRACTIONS, split_of
from ttscale.strategy_params import RolloutParams
from ttscale.verifiers.base import split_steps

STEP_SCHEMA = {
    "dataset": pl.String,
    "problem_id": pl.String,
    "model": pl.String,
    "split": pl.String,
    "problem": pl.String,
    "steps": pl.List(pl.String),
    "n_steps": pl.Int64,
    "label_hard": pl.Boolean,
    "label_soft": pl.Float64,
    "n_candidates": pl.Int64,
    "n_correct": pl.Int64,
    "n_nodes": pl.Int64,
    "is_final": pl.Boolean,
    "n_cells": pl.Int64,
    "n_rollout_candidates": pl.Int64,
}
"""One row per step prefix. `steps`: the prefix, root first; `n_candidates`/`n_correct`: the
graded candidates below it (0: unlabelled, labels null); `n_nodes`: stored tree nodes ending
exactly there; `is_final`: a candidate ends there (its last step); `n_cells`: cells whose trees
reach it; `n_rollout_candidates`: of `n_candidates`, those of roll-out cells (equal: labelled by
roll-outs alone)."""

ROLLOUT = RolloutParams.model_fields["name"].default
"""The strategy of roll-out cells: candidates only, no tree nodes to label."""


@dataclass
class _Prefix:
    candidates: set[tuple[str, str, int]] = field(default_factory=set)
    """(cell_id, problem_id, idx) of each graded candidate below."""
    cells: set[str] = field(default_factory=set)
    n_nodes: int = 0
    is_final: bool = False


def step_rows(
    cells: pl.DataFrame,
    runs: pl.DataFrame,
    problems: pl.DataFrame,
    candidates: pl.DataFrame,
    nodes: pl.DataFrame,
    *,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    split_salt: str = "",
    split: Callable[[str], str] | None = None,
    with_cells: bool = False,
) -> pl.DataFrame:
    """The step dataset (`STEP_SCHEMA`) of the generating cells in `cells`; `with_cells` adds
    `cell_ids`, the sorted ids of the cells reaching each row (what roll-outs are planned from).

    Frames as the store's readers return them: `cells` (cell_id, model, strategy, source_cell_id),
    `runs` (cell_id, problem_id, dataset), `problems` (dataset, problem_id, text),
    `candidates` with text (cell_id, problem_id, idx, text, correct, leaf_node), `nodes`
    (cell_id, problem_id, node_id, parent_id, kind, text). Candidates without a grade are left out.
    """
    split = split or (lambda pid: split_of(pid, fractions, split_salt))
    generating = cells.filter(pl.col("source_cell_id").is_null())
    model_of = dict(zip(generating["cell_id"].to_list(), generating["model"].to_list(), strict=True))
    rolled = set(generating.filter(pl.col("strategy") == ROLLOUT)["cell_id"].to_list())
    dataset_of = {(r["cell_id"], r["problem_id"]): r["dataset"] for r in runs.select("cell_id", "problem_id", "dataset").iter_rows(named=True)}
    text_of = {(r["dataset"], r["problem_id"]): r["text"] for r in problems.select("dataset", "problem_id", "text").iter_rows(named=True)}

    prefixes: dict[tuple[str, str, str, tuple[str, ...]], _Prefix] = {}
    correct: dict[tuple[str, str, int], bool] = {}

    def entry(cell_id: str, problem_id: str, steps: tuple[str, ...]) -> _Prefix:
        key = (model_of[cell_id], dataset_of[(cell_id, problem_id)], problem_id, steps)
        found = prefixes.get(key)
        if found is None:
            found = prefixes[key] = _Prefix()
        found.cells.add(cell_id)
        return found

    cands = candidates.filter(pl.col("cell_id").is_in(list(model_of)) & pl.col("correct").is_not_null())
    below: dict[tuple[str, str, int], set[tuple[str, str, int]]] = {}
    parents = {
        (r["cell_id"], r["problem_id"], r["node_id"]): r["parent_id"]
        for r in nodes.select("cell_id", "problem_id", "node_id", "parent_id").iter_rows(named=True)
    }
    for r in cands.select("cell_id", "problem_id", "idx", "text", "correct", "leaf_node").iter_rows(named=True):
        ident = (r["cell_id"], r["problem_id"], r["idx"])
        correct[ident] = bool(r["correct"])
        steps = tuple(split_steps(r["text"]))
        for k in range(1, len(steps) + 1):
            entry(r["cell_id"], r["problem_id"], steps[:k]).candidates.add(ident)
        if steps:
            entry(r["cell_id"], r["problem_id"], steps).is_final = True
        node: int | None = r["leaf_node"]
        while node is not None:  # the candidate is below every node on its path
            below.setdefault((r["cell_id"], r["problem_id"], node), set()).add(ident)
            node = parents.get((r["cell_id"], r["problem_id"], node))

    path_text: dict[tuple[str, str, int], str] = {}
    searched = [cell for cell in model_of if cell not in rolled]
    tree_nodes = nodes.filter(pl.col("cell_id").is_in(searched) & pl.col("kind").is_in(["step", "completion"]))
    for r in tree_nodes.select("cell_id", "problem_id", "node_id", "parent_id", "text").sort("cell_id", "problem_id", "node_id").iter_rows(named=True):
        key = (r["cell_id"], r["problem_id"], r["node_id"])
        parent = r["parent_id"]
        text = (path_text.get((r["cell_id"], r["problem_id"], parent), "") if parent is not None else "") + r["text"]
        path_text[key] = text
        steps = tuple(split_steps(text))
        if not steps or (r["cell_id"], r["problem_id"]) not in dataset_of:
            continue
        found = entry(r["cell_id"], r["problem_id"], steps)
        found.n_nodes += 1
        found.candidates |= below.get(key, set())

    rows = []
    for (model, dataset, problem_id, steps), p in prefixes.items():
        n = len(p.candidates)
        c = sum(correct[i] for i in p.candidates)
        rows.append({
            "dataset": dataset, "problem_id": problem_id, "model": model, "split": split(problem_id),
            "problem": text_of.get((dataset, problem_id), ""), "steps": list(steps), "n_steps": len(steps),
            "label_hard": c > 0 if n else None, "label_soft": c / n if n else None,
            "n_candidates": n, "n_correct": c, "n_nodes": p.n_nodes, "is_final": p.is_final, "n_cells": len(p.cells),
            "n_rollout_candidates": sum(cell in rolled for cell, _, _ in p.candidates), "cell_ids": sorted(p.cells),
        })  # fmt: skip
    schema = STEP_SCHEMA | {"cell_ids": pl.List(pl.String)}
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    if not with_cells:
        frame = frame.drop("cell_ids")
    return frame.sort("dataset", "problem_id", "model", "n_steps", pl.col("steps").list.join("\n\n"), maintain_order=True)


def covering_solutions(rows: pl.DataFrame) -> tuple[list[tuple[str, tuple[str, ...]]], list[tuple[int, int]]]:
    """(solutions to encode: (problem, steps); for each row, (solution index, step index)).

    Each distinct problem text's step lists, longest first; a list that is a prefix of one
    already chosen is read from that one."""
    by_problem: dict[str, set[tuple[str, ...]]] = {}
    for problem, steps in rows.select("problem", "steps").iter_rows():
        by_problem.setdefault(problem, set()).add(tuple(steps))
    solutions: list[tuple[str, tuple[str, ...]]] = []
    where: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {}
    for problem in sorted(by_problem):
        for steps in sorted(by_problem[problem], key=lambda s: (-len(s), s)):
            if (problem, steps) in where:
                continue
            index = len(solutions)
            solutions.append((problem, steps))
            for k in range(1, len(steps) + 1):
                where.setdefault((problem, steps[:k]), (index, k - 1))
    placed = [where[(problem, tuple(steps))] for problem, steps in rows.select("problem", "steps").iter_rows()]
    return solutions, placed
