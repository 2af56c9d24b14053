"""Which step prefixes get roll-outs, and the cells that sample them (`ttscale learn dataset --rollouts N`).

A step prefix with fewer than K graded candidates below it (`--min-candidates`, default 1: the
pruned steps nothing labels) gets N continuations (`--rollouts`), fewest candidates first, at most M
prefixes (`--max-rollout-prefixes`). A prefix some candidate ends on is left out: it is a whole
solution, whose grade is its label. Math-Shepherd (Wang et al. 2024, §3.3) samples N completions
from every step; spending them only where the trees left a step short keeps the cost to what the
labels lack.

The continuations are sampled as the prefix's source cell generated — same model (and so prompt
template), dataset, engine seed, sampling settings (temperature, top-p, token limits) and fidelity
profile — by a `rollout` cell (`strategies/rollout.py`), one per distinct such setting holding every
prefix planned for it: one shard and one engine call per setting. A prefix's source is the first, by
id, of the cells whose trees reach it. A cell's id hashes its prefixes, N and settings, so planning
the same dataset again gives the same cells, and the runner skips what they stored instead of
sampling it twice. Pure: frames in, cell specs out.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ttscale.errors import SpecError
from ttscale.learning.labels import ROLLOUT
from ttscale.spec import MAX_N, CellSpec, as_cell, canonical_json
from ttscale.strategy_params import RolloutParams


@dataclass(frozen=True)
class RolloutOptions:
    """What `ttscale learn dataset` spends on roll-outs (0 roll-outs: none)."""

    n: int = 0
    """N: continuations sampled from each chosen prefix (`--rollouts`)."""
    min_candidates: int = 1
    """K: a prefix with fewer graded candidates below it gets roll-outs (`--min-candidates`)."""
    max_prefixes: int | None = None
    """M: at most this many prefixes get roll-outs, fewest candidates first (`--max-rollout-prefixes`); None: all."""


def rollout_options(n: int, min_candidates: int | None, max_prefixes: int | None) -> RolloutOptions:
    """The options as given on the command line (None: not given); SpecError naming the option
    that cannot run, in one line."""
    if not 0 <= n <= MAX_N:
        raise SpecError(f"--rollouts: must be from 0 to {MAX_N}, got {n}")
    if min_candidates is not None and min_candidates < 1:
        raise SpecError(f"--min-candidates: must be >= 1, got {min_candidates}")
    if max_prefixes is not None and max_prefixes < 1:
        raise SpecError(f"--max-rollout-prefixes: must be >= 1, got {max_prefixes}")
    if n == 0 and (min_candidates is not None or max_prefixes is not None):
        option = "--min-candidates" if min_candidates is not None else "--max-rollout-prefixes"
        raise SpecError(f"{option}: only with --rollouts N (N > 0 continuations per prefix)")
    return RolloutOptions(n, 1 if min_candidates is None else min_candidates, max_prefixes)


def eligible_prefixes(rows: pl.DataFrame, min_candidates: int) -> pl.DataFrame:
    """The rows (`labels.step_rows`) with fewer than `min_candidates` graded candidates below
    that no candidate ends on, fewest candidates first, then in the rows' order."""
    short = rows.filter((pl.col("n_candidates") < min_candidates) & ~pl.col("is_final"))
    return short.sort("n_candidates", maintain_order=True)


@dataclass(frozen=True)
class RolloutCell:
    """A roll-out cell to run and what it was planned from."""

    cell: CellSpec
    source_cell_ids: tuple[str, ...]
    """The cells whose trees gave its prefixes (a prefix's first cell by id)."""
    n_prefixes: int


def plan_rollouts(chosen: pl.DataFrame, cells: pl.DataFrame, n: int) -> list[RolloutCell]:
    """The roll-out cells sampling `n` continuations of each `chosen` row (`labels.step_rows`
    with `with_cells`), from the stored `cells` (cell_id, strategy, spec) that reached them;
    ordered by their first source cell."""
    specs = {
        row["cell_id"]: as_cell(row["spec"])
        for row in cells.select("cell_id", "strategy", "spec").iter_rows(named=True)
        if row["strategy"] != ROLLOUT  # roll-outs are continued from the searched trees only
    }
    groups: dict[str, tuple[CellSpec, set[str], dict[str, set[tuple[str, ...]]]]] = {}
    for row in chosen.select("problem_id", "steps", "cell_ids").iter_rows(named=True):
        source = next(c for c in row["cell_ids"] if c in specs)
        spec = specs[source]
        key = "\0".join([spec.model, canonical_json(spec.dataset), str(spec.seed), canonical_json(spec.sampling), spec.fidelity])
        group = groups.setdefault(key, (spec, set(), {}))
        group[1].add(source)
        group[2].setdefault(row["problem_id"], set()).add(tuple(row["steps"]))
    planned = []
    for spec, sources, by_problem in groups.values():
        prefixes = {pid: tuple(sorted(found, key=lambda steps: (len(steps), steps))) for pid, found in sorted(by_problem.items())}
        cell = CellSpec(
            model=spec.model, strategy=RolloutParams(prefixes=prefixes), n=n, dataset=spec.dataset, seed=spec.seed,
            sampling=spec.sampling, fidelity=spec.fidelity,
        )  # fmt: skip
        planned.append(RolloutCell(cell, tuple(sorted(sources)), sum(len(p) for p in prefixes.values())))
    return sorted(planned, key=lambda p: p.source_cell_ids)
