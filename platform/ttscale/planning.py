"""A sweep spec becomes a plan: cells, the cell whose generations serve each one, shards of
problem ids, and an estimate of the work. Pure: problem ids and what the store already holds
arrive as arguments (`ttscale.execution` loads them), nothing is read or written here.

- Cells: `SweepSpec.cells()`, checked for duplicates (the same cell id twice is one piece of
  work listed twice: rejected, naming the field that repeats).
- Generation sources: with `share_generations`, a majority/best_of_n/dvts cell at a smaller
  budget n is served by the same cell at the largest budget N — its first n candidates are
  exactly a run at n (`spec.PREFIX_SHAREABLE`). A served cell runs nothing itself; the store
  records `source_cell_id` for it.
- Shards: the problems a running cell still needs, in dataset order, `shard_size` at a time.
  A shard is the unit of retry and of one store transaction.
- Estimates: upper bounds of sequences sampled and tokens generated per cell, for
  `ttscale sweep validate` (searches usually stop before their last iteration).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ttscale.errors import SpecError
from ttscale.spec import CellSpec, DatasetSpec, SweepSpec


@dataclass(frozen=True)
class PlannedCell:
    """A cell of the grid and where its generations come from."""

    cell: CellSpec
    source_cell_id: str | None = None
    """The larger-budget cell whose first n candidates serve this one; None when it runs itself."""

    @property
    def cell_id(self) -> str:
        return self.cell.cell_id

    @property
    def runs(self) -> bool:
        """Whether this cell generates anything itself."""
        return self.source_cell_id is None


@dataclass(frozen=True)
class Shard:
    """Problems of one cell run and stored together (one task or deployment run)."""

    cell_id: str
    index: int
    """Position among the cell's shards in this plan (0-based)."""
    problem_ids: tuple[str, ...]


@dataclass(frozen=True)
class WorkEstimate:
    """Upper bounds of the work a cell (or a sweep) asks of the policy."""

    n_problems: int = 0
    n_generations: int = 0
    """Sequences sampled (one per sample, search expansion or lookahead roll-out)."""
    n_tokens: int = 0
    """Generated tokens if every sequence ran to its token limit."""

    def __add__(self, other: WorkEstimate) -> WorkEstimate:
        return WorkEstimate(
            self.n_problems + other.n_problems,
            self.n_generations + other.n_generations,
            self.n_tokens + other.n_tokens,
        )


@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep needs to run, before anything runs."""

    spec: SweepSpec
    cells: tuple[PlannedCell, ...]
    problem_ids: Mapping[str, tuple[str, ...]]
    """Problem ids of every cell (served cells included), in dataset order."""
    shards: tuple[Shard, ...]
    """Work left: shards of running cells, without the problems already stored."""
    estimates: Mapping[str, WorkEstimate] = field(default_factory=dict)
    """Per running cell, for all its problems (served cells cost nothing)."""

    @property
    def running_cells(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.runs]

    @property
    def served_cells(self) -> list[PlannedCell]:
        return [c for c in self.cells if not c.runs]

    @property
    def total(self) -> WorkEstimate:
        out = WorkEstimate()
        for estimate in self.estimates.values():
            out = out + estimate
        return out

    def cell(self, cell_id: str) -> PlannedCell:
        for planned in self.cells:
            if planned.cell_id == cell_id:
                return planned
        raise KeyError(cell_id)

    @property
    def n_problems_left(self) -> int:
        return sum(len(s.problem_ids) for s in self.shards)


def dataset_key(dataset: DatasetSpec) -> str:
    """A dataset spec's identity (its canonical JSON): the key of `problem_ids` mappings."""
    return json.dumps(dataset.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _describe(cell: CellSpec) -> str:
    verifier = f" verifier={cell.verifier}" if cell.verifier else ""
    return f"model={cell.model} strategy={cell.strategy.name}{verifier} n={cell.n} dataset={cell.dataset.label} seed={cell.seed}"


def expand_cells(spec: SweepSpec) -> list[PlannedCell]:
    """The spec's cells with their generation source; SpecError if a cell appears twice."""
    cells = spec.cells()
    counts = Counter(c.cell_id for c in cells)
    dupes = [c for c in cells if counts[c.cell_id] > 1]
    if dupes:
        repeated_verifiers = [v for v, k in Counter(spec.verifiers).items() if k > 1]
        where = f"verifiers: duplicate entries {repeated_verifiers}; " if repeated_verifiers else "cells: "
        raise SpecError(f"{where}cell {dupes[0].cell_id} ({_describe(dupes[0])}) appears {counts[dupes[0].cell_id]} times")
    ids = set(counts)
    planned = []
    for cell in cells:
        source = spec.generation_source(cell)
        source_id = source.cell_id
        if source_id == cell.cell_id:
            planned.append(PlannedCell(cell))
        else:
            assert source_id in ids, "generation_source must name a cell of the grid"
            planned.append(PlannedCell(cell, source_cell_id=source_id))
    return planned


def make_shards(cell_id: str, problem_ids: Sequence[str], shard_size: int, done: frozenset[str] | set[str] = frozenset()) -> list[Shard]:
    """The problems of `cell_id` not in `done`, in order, `shard_size` at a time."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    todo = [pid for pid in problem_ids if pid not in done]
    return [
        Shard(cell_id, i, tuple(todo[start : start + shard_size]))
        for i, start in enumerate(range(0, len(todo), shard_size))
    ]


def estimate_cell(cell: CellSpec, n_problems: int) -> WorkEstimate:
    """Upper bounds per cell: N samples of at most `max_tokens` (majority, Best-of-N); N
    expansions per iteration of at most `step_max_tokens`, each with `lookahead` extra steps,
    the last iteration rolled out to `max_tokens` (beam search, DVTS); N chains of 1 + R
    answers (self-refinement)."""
    s, p = cell.sampling, cell.strategy
    if p.name in ("beam_search", "dvts"):
        per_iteration = cell.n * (1 + p.lookahead)
        generations = per_iteration * p.n_iterations
        tokens = per_iteration * (p.n_iterations - 1) * s.step_max_tokens + cell.n * s.max_tokens
    elif p.name == "self_refine":
        generations = cell.n * (1 + p.n_rounds)
        tokens = generations * s.max_tokens
    else:
        generations = cell.n
        tokens = cell.n * s.max_tokens
    return WorkEstimate(n_problems, generations * n_problems, tokens * n_problems)


def plan_sweep(
    spec: SweepSpec,
    dataset_problem_ids: Mapping[str, Sequence[str]],
    done: Mapping[str, set[str] | frozenset[str]] | None = None,
) -> SweepPlan:
    """Plan `spec` given each dataset's problem ids (keyed by `dataset_key`) and, per cell
    id, the problems the store already holds (skipped: the store is the source of truth)."""
    done = done or {}
    cells = expand_cells(spec)
    problem_ids: dict[str, tuple[str, ...]] = {}
    shards: list[Shard] = []
    estimates: dict[str, WorkEstimate] = {}
    for planned in cells:
        key = dataset_key(planned.cell.dataset)
        if key not in dataset_problem_ids:
            raise KeyError(f"no problem ids given for dataset {planned.cell.dataset.label}")
        ids = tuple(dataset_problem_ids[key])
        problem_ids[planned.cell_id] = ids
        if planned.runs:
            estimates[planned.cell_id] = estimate_cell(planned.cell, len(ids))
            shards += make_shards(planned.cell_id, ids, spec.shard_size, done.get(planned.cell_id, frozenset()))
    return SweepPlan(spec, tuple(cells), problem_ids, tuple(shards), estimates)
