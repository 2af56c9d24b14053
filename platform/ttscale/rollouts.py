"""Roll-outs for step labels, run against the store: the `rollout` cells `learning.rollout_plan`
planned, every one checked before any runs, then each run as one shard through `runner.run_shard`.

So a roll-out is claimed, generated on the cell's own policy (all of a cell's prefixes in one
batched engine call), graded, charged (tokens and FLOPs on its problem runs and the cell's totals)
and stored as any cell's shard is, and a rerun finds it stored and skips it. A roll-out cell belongs
to no sweep: the step dataset's card names it, and reports, frontiers and policies leave it out
(`StrategyParams.selects_answers`).

`plan_rollouts_for` chooses the prefixes and plans and checks the cells (no model loaded);
`spend` runs them and reads them back; `ttscale learn dataset --rollouts` calls both.

Each cell runs over every problem of its dataset, those without a prefix as empty results (no
tokens), so the cell is `done` once stored, as a sweep's cells are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ttscale import results, runner, store
from ttscale.errors import SpecError, TtscaleError
from ttscale.learning.labels import ROLLOUT, step_rows
from ttscale.learning.rollout_plan import RolloutCell, RolloutOptions, eligible_prefixes, plan_rollouts
from ttscale.planning import PreparedCell, prepare_cell
from ttscale.settings import Settings
from ttscale.store import Engine


@dataclass(frozen=True)
class RolloutPlan:
    """The roll-out cells for a step dataset, every one checked to run (`check_rollouts`)."""

    options: RolloutOptions
    planned: list[RolloutCell]
    n_eligible: int
    """Step prefixes with fewer than `options.min_candidates` graded candidates below."""
    n_chosen: int
    """Of those, how many get roll-outs (`options.max_prefixes` caps it, fewest candidates first)."""


@dataclass(frozen=True)
class SpentRollouts:
    """What `spend` ran, and the roll-out cells' stored frames (as `results.read_results` reads a cell's)."""

    n_eligible: int
    planned: list[RolloutCell]
    reports: list[runner.ShardReport]
    cells: pl.DataFrame
    runs: pl.DataFrame
    problems: pl.DataFrame
    candidates: pl.DataFrame


def plan_rollouts_for(
    stored: results.StoredResults, candidates: pl.DataFrame, nodes: pl.DataFrame, options: RolloutOptions, settings: Settings
) -> RolloutPlan:
    """Plan from the searched cells' rows only, never from roll-out cells (so a rerun plans the
    same cells); every planned cell checked before any runs. Loads no model."""
    searched = stored.cells.filter(pl.col("strategy") != ROLLOUT)
    basis = step_rows(searched, stored.runs, stored.problems, candidates, nodes, with_cells=True)
    eligible = eligible_prefixes(basis, options.min_candidates)
    chosen = eligible if options.max_prefixes is None else eligible.head(options.max_prefixes)
    planned = plan_rollouts(chosen, searched, options.n)
    check_rollouts(planned, settings)
    return RolloutPlan(options, planned, eligible.height, chosen.height)


def spend(engine: Engine, plan: RolloutPlan, settings: Settings) -> SpentRollouts:
    """Run the plan's cells (what is stored already is skipped) and read them back."""
    reports = run_rollouts(engine, plan.planned, settings)
    ids = [p.cell.cell_id for p in plan.planned]
    with store.connect(engine) as conn:
        return SpentRollouts(
            plan.n_eligible, plan.planned, reports, store.read_cells(conn, cell_ids=ids), store.read_problem_runs(conn, ids),
            store.read_problems_of_cells(conn, ids), store.read_candidates(conn, ids, with_text=True),
        )  # fmt: skip


def check_rollouts(planned: Sequence[RolloutCell], settings: Settings) -> list[PreparedCell]:
    """Each planned cell prepared (its model resolves, its dataset loads and holds its prefixes'
    problems); a TtscaleError naming the source cell otherwise. Loads no model."""
    prepared = []
    for p in planned:
        where = f"--rollouts: source cell {p.source_cell_ids[0]}"
        try:
            ready = prepare_cell(p.cell, settings)
        except TtscaleError as err:
            raise type(err)(f"{where}: {err}") from None
        missing = sorted(set(p.cell.strategy.prefixes) - {problem.id for problem in ready.problems})
        if missing:
            raise SpecError(f"{where}: problem {missing[0]!r} is no longer in dataset {p.cell.dataset.label}")
        prepared.append(ready)
    return prepared


def run_rollouts(
    engine: Engine, planned: Sequence[RolloutCell], settings: Settings, *, progress: runner.ShardProgress | None = None
) -> list[runner.ShardReport]:
    """Run every planned cell not yet stored (all checked first), one shard each; the reports
    in `planned` order (`n_written` 0: stored before, nothing sampled). Releases the engines."""
    prepared = check_rollouts(planned, settings)
    try:
        return [
            runner.run_shard(engine, ready.cell, [problem.id for problem in ready.problems], settings, wait=True, progress=progress)
            for ready in prepared
        ]
    finally:
        runner.release_policies()
