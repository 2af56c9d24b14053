"""Stored results in the shape analysis takes them: the one loader behind `ttscale report`, the
CLI's summaries, MLflow tracking and the dashboard.

A set of cells is read with the larger cells whose generations serve them (`source_cell_id`),
their candidates, problem runs and problems, in one connection; `report` and `summaries` then
hand those frames to `ttscale.analysis`, which does all the arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from ttscale.store import Connection
from ttscale import store
from ttscale.analysis.agreement import agreement
from ttscale.analysis.cell_results import cell_accuracy_at, cell_totals
from ttscale.analysis.learned_policy import learn_policy
from ttscale.analysis.report import Report, build_report
from ttscale.errors import SpecError
from ttscale.policy import Policy
from ttscale.strategy_params import ANSWERING


@dataclass(frozen=True)
class StoredResults:
    cells: pl.DataFrame
    """The cells asked for and their sources (`store.read_cells` columns)."""
    candidates: pl.DataFrame
    """Candidates of the cells that generated (served cells have none of their own)."""
    runs: pl.DataFrame
    """Problem runs of the generating cells."""
    problems: pl.DataFrame
    """The problems the generating cells ran."""
    verdicts: pl.DataFrame | None = None
    """Stored verdicts of both sources where an imported cell has published ones, else None."""

    @property
    def generating(self) -> pl.DataFrame:
        return self.cells.filter(pl.col("source_cell_id").is_null())


def resolve_sweep(conn: Connection, target: str) -> dict | None:
    """The sweep row `target` names (as `resolve_cells` reads it), or None for a cell id."""
    return None if store.read_cell(conn, target) is not None else store.read_sweep(conn, target)


def resolve_cells(conn: Connection, target: str) -> pl.DataFrame:
    """The cells `target` names — a sweep (id, id prefix or name) or one cell id — as
    `store.read_cells` rows. SpecError naming SWEEP_OR_CELL if it names nothing."""
    cell = store.read_cell(conn, target)
    if cell is not None:
        return store.read_cells(conn, cell_ids=[target])
    try:
        sweep = store.read_sweep(conn, target)
    except SpecError:
        n_sweeps, n_cells = store.count_sweeps_and_cells(conn)
        raise SpecError(
            f"SWEEP_OR_CELL: no sweep or cell {target!r} in the store "
            f"({n_sweeps} sweeps, {n_cells} cells; `ttscale export` lists them)"
        ) from None
    return store.read_cells(conn, sweep["sweep_id"])


def read_results(conn: Connection, cells: pl.DataFrame, *, with_sources: bool = True) -> StoredResults:
    """`cells` (as `store.read_cells` gives them) with their sources and the frames analysis needs."""
    if with_sources:
        missing = set(cells["source_cell_id"].drop_nulls().to_list()) - set(cells["cell_id"].to_list())
        if missing:
            cells = pl.concat([cells, store.read_cells(conn, cell_ids=sorted(missing))], how="vertical")
    generating = cells.filter(pl.col("source_cell_id").is_null())["cell_id"].to_list()
    published = store.read_verdicts(conn, generating, source="published")
    return StoredResults(
        cells,
        store.read_candidates(conn, generating),
        store.read_problem_runs(conn, generating),
        store.read_problems_of_cells(conn, generating),
        pl.concat([published, store.read_verdicts(conn, sorted(set(published["cell_id"])), source="ttscale")]) if published.height else None,
    )


def compared(results: StoredResults) -> StoredResults:
    """Only the cells of strategies that answer problems (`StrategyParams.selects_answers`):
    roll-out cells, which label stored steps, are no option to compare. SpecError if none is left."""
    kept = results.cells.filter(pl.col("strategy").is_in(sorted(ANSWERING)))
    if kept.height == results.cells.height:
        return results
    if kept.height == 0:
        raise SpecError("SWEEP_OR_CELL: roll-out cells label stored steps (`ttscale learn dataset`); they answer no problem to compare")
    ids = kept["cell_id"].to_list()
    return replace(
        results, cells=kept, candidates=results.candidates.filter(pl.col("cell_id").is_in(ids)),
        runs=results.runs.filter(pl.col("cell_id").is_in(ids)),
    )  # fmt: skip


def report(results: StoredResults, **options: object) -> Report:
    """`analysis.build_report` over the generating cells (served cells are their sources' prefixes)
    of the strategies that answer problems (`compared`)."""
    if results.candidates.height == 0:
        raise SpecError("SWEEP_OR_CELL: no stored candidates yet")
    results = compared(results)
    built = build_report(results.generating, results.candidates, results.runs, results.problems, **options)
    return built if results.verdicts is None else replace(built, agreement=agreement(results.verdicts))


def policy(results: StoredResults, *, sweep: dict | None, code_version: str, **options: object) -> Policy:
    """`analysis.learned_policy.learn_policy` over the generating cells: the compute-optimal
    policy of one model and dataset (`options`: model, dataset, n_bins)."""
    if results.candidates.height == 0:
        raise SpecError("SWEEP_OR_CELL: no stored candidates yet")
    results = compared(results)
    return learn_policy(results.generating, results.candidates, results.runs, code_version=code_version, sweep=sweep, **options)


@dataclass(frozen=True)
class CellSummaries:
    accuracy: pl.DataFrame
    """cell_id, n, method, accuracy (`analysis.cell_results.cell_accuracy_at`)."""
    totals: pl.DataFrame
    """cell_id, n_problems, tokens, FLOPs, wall time (`analysis.cell_results.cell_totals`)."""

    def at(self, cell_id: str, n: int) -> dict[str, float]:
        """method → accuracy of one cell at budget n."""
        rows = self.accuracy.filter((pl.col("cell_id") == cell_id) & (pl.col("n") == n))
        return dict(zip(rows["method"].to_list(), rows["accuracy"].to_list(), strict=True))

    def totals_of(self, cell_id: str) -> dict:
        rows = self.totals.filter(pl.col("cell_id") == cell_id)
        return rows.row(0, named=True) if rows.height else {}


def summaries(results: StoredResults) -> CellSummaries:
    """Each cell's accuracy at its budgets and its totals."""
    return CellSummaries(cell_accuracy_at(results.cells, results.candidates), cell_totals(results.cells, results.runs))


def load(conn: Connection, cell_ids: Sequence[str]) -> StoredResults:
    """`read_results` of the cells with these ids."""
    return read_results(conn, store.read_cells(conn, cell_ids=list(cell_ids)))
