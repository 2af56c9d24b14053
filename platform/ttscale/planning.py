"""A sweep spec becomes a plan: cells, the cell whose generations serve each one, shards of
problem ids, and an estimate of the work — and every check a sweep must pass before anything
is queued (`check_sweep`, `prepare_cell`). Planning reads datasets and the model registry but
never the store or a model's weights: what the store already holds arrives as an argument
(`sweep_state.plan_remaining` reads it).

- Cells: `SweepSpec.cells()`, checked for duplicates (the same cell id twice is one piece of
  work listed twice: rejected, naming the field that repeats).
- Generation sources: with `share_generations`, a cell of a strategy whose budgets share a run
  (`StrategyParams.shares_prefix`) at a smaller budget n is served by the same cell at the
  largest budget N — its first n candidates are exactly a run at n. A served cell runs nothing
  itself; the store records `source_cell_id` for it.
- Shards: the problems a running cell still needs, in dataset order, `shard_size` at a time.
  A shard is the unit of retry and of one store transaction.
- Estimates: upper bounds of sequences sampled and tokens generated per cell
  (`StrategyParams.estimate`), for `ttscale sweep validate` (searches usually stop early).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ttscale.backends import resolve_policy_model
from ttscale.data import load_problems
from ttscale.errors import DataError, SpecError, TtscaleError
from ttscale.models import ModelInfo
from ttscale.settings import Settings
from ttscale.spec import CellSpec, DatasetSpec, SweepSpec, canonical_json
from ttscale.strategies import strategy_names
from ttscale.tree import Problem
from ttscale.verifiers import check_verifier


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
    return canonical_json(dataset)


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
    """Upper bounds of a cell's work: its strategy's estimate per problem (`StrategyParams.estimate`)."""
    generations, tokens = cell.strategy.estimate(cell.n, cell.sampling)
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


# ---- checks: everything a sweep needs, before anything is queued ---------------------------------


@dataclass(frozen=True)
class PreparedCell:
    """A cell whose names all resolve, with its problems loaded; no model loaded yet."""

    cell: CellSpec
    problems: list[Problem]
    """The dataset's problems; none for a cell whose problems arrive with requests (`check_cell`)."""
    model_info: ModelInfo


def check_cell(cell: CellSpec, settings: Settings) -> PreparedCell:
    """Validate every name of `cell` (strategy, verifier, model) without loading its dataset or
    any model: what the serving endpoint prepares, whose problems arrive with requests. Raises
    TtscaleError naming the field."""
    strategy_names()  # every strategy module registered
    if cell.verifier is not None:
        check_verifier(cell.verifier, "verifier")
    return PreparedCell(cell, [], resolve_policy_model(cell.model, settings))


def prepare_cell(cell: CellSpec, settings: Settings) -> PreparedCell:
    """Validate every name of `cell` and load its problems; no model is loaded. Bad input fails
    here in seconds, before anything is written. Raises TtscaleError naming the field."""
    checked = check_cell(cell, settings)
    return PreparedCell(cell, load_problems(cell.dataset), checked.model_info)


def _renamed(message: str, old: str, new: str) -> str:
    return new + message[len(old) :] if message.startswith(old) else f"{new}: {message}"


def check_sweep(spec: SweepSpec, settings: Settings) -> dict[str, list[str]]:
    """Check everything the sweep needs before anything is queued — cells unique, every model,
    verifier, strategy and dataset known, every dataset readable — and return each dataset's
    problem ids (keyed by `dataset_key`). Loads no model. Raises SpecError/DataError with one
    line per problem, each naming the spec field."""
    errors: list[str] = []
    try:
        planned = expand_cells(spec)
    except SpecError as err:
        errors.append(str(err))
        planned = []
    for i, model in enumerate(spec.models):
        try:
            resolve_policy_model(model, settings)
        except TtscaleError as err:
            errors.append(_renamed(str(err), "model", f"models[{i}]"))
    for i, verifier in enumerate(spec.verifiers):
        if verifier is not None:
            try:
                check_verifier(verifier, f"verifiers[{i}]")
            except SpecError as err:
                errors.append(str(err))
    ids: dict[str, list[str]] = {}
    for i, dataset in enumerate(spec.datasets):
        try:
            ids[dataset_key(dataset)] = [p.id for p in load_problems(dataset)]
        except TtscaleError as err:
            msg = str(err)
            if msg.startswith("dataset.name"):
                errors.append(_renamed(msg, "dataset.name", f"datasets[{i}].name"))
            elif dataset.path is not None and msg.startswith(dataset.path):
                errors.append(f"datasets[{i}].path: {msg}")
            else:
                errors.append(f"datasets[{i}]: {msg}")
    if not errors:
        # What a shard checks first, once per distinct combination of names.
        seen: set[tuple] = set()
        for p in planned:
            key = (p.cell.model, p.cell.verifier, p.cell.strategy.name, dataset_key(p.cell.dataset))
            if key not in seen:
                seen.add(key)
                try:
                    prepare_cell(p.cell, settings)
                except TtscaleError as err:
                    errors.append(str(err))
    if errors:
        unique = list(dict.fromkeys(errors))
        error_type = DataError if all("dataset" in e for e in unique) else SpecError
        raise error_type("\n".join(unique))
    return ids
