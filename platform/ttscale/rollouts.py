"""Roll-outs for step labels, run against the store: the `rollout` cells `learning.rollout_plan`
planned, every one checked before any runs, then each run as one shard through `runner.run_shard`.

So a roll-out is claimed, generated on the cell's own policy (all of a cell's prefixes in one
batched engine call), graded, charged (tokens and FLOPs on its problem runs and the cell's totals)
and stored as any cell's shard is, and a rerun finds it stored and skips it. A roll-out cell belongs
to no sweep: the step dataset's card names it, and reports, frontiers and policies leave it out
(`StrategyParams.selects_answers`).

Each cell runs over every problem of its dataset, those without a prefix as empty results (no
tokens), so the cell is `done` once stored, as a sweep's cells are.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale import runner
from ttscale.errors import SpecError, TtscaleError
from ttscale.learning.rollout_plan import RolloutCell
from ttscale.planning import PreparedCell, prepare_cell
from ttscale.settings import Settings
from ttscale.store import Engine


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
