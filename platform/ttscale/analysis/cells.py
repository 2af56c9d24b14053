"""What a cell is, as analysis groups it: model, dataset, a configuration label, budget, seed.

A *configuration* is everything about a cell except its model, dataset, budget N and seed:
the strategy with its hyperparameters, the verifier and the step-score aggregation. Cells
that differ only in seed are replicates of one configuration; the compute-optimal frontier
chooses among configurations (times a selection method) per budget.

Labels name only what varies within the frame given, so a sweep with one beam search reads
`beam_search`, and one that varies the lookahead reads `beam_search[lookahead=2]`. A learned
verifier appears by its display name (`reward_model.short_name`: `learned:FOLDER@12345678`, not
its absolute path), the full name staying in the `verifier` column.
"""

from __future__ import annotations

import json

import polars as pl

from ttscale.analysis.frames import CELL_COLUMNS, require_columns
from ttscale.reward_model import short_names
from ttscale.spec import as_cell
from ttscale.strategy_params import PARAMS_BY_NAME, StrategyParams

DESCRIBED_COLUMNS = (
    "cell_id", "model", "dataset", "strategy", "config", "base_config", "verifier", "aggregation", "n_cell", "seed", "prefix_unit",
)  # fmt: skip


def _strategy(row: dict) -> StrategyParams | None:
    """The strategy parameters of a cell's canonical JSON (`CellSpec.canonical_json`), or those
    its columns give (strategy name, beam_width) when it has no spec."""
    if row.get("spec"):
        return as_cell(row["spec"]).strategy
    params = PARAMS_BY_NAME.get(row["strategy"])
    if params is None:
        return None
    fields = {"beam_width": row["beam_width"]} if row.get("beam_width") is not None and "beam_width" in params.model_fields else {}
    return params(**fields)


def describe_cells(cells: pl.DataFrame) -> pl.DataFrame:
    """One row per cell: cell_id, model, dataset, strategy, config, base_config (the config without
    its verifier: cells that differ only in verifier share it), verifier, aggregation, n_cell, seed,
    prefix_unit (the smallest prefix of the cell that is a run itself: `StrategyParams.prefix_unit`).

    `cells` is `store.read_cells(...)`: it needs cell_id, model,
    dataset, strategy, n, seed and may carry verifier, aggregation, beam_width and spec (the canonical JSON, from which
    strategy hyperparameters are read). This reads one small row per cell in Python.
    """
    require_columns(cells, CELL_COLUMNS, "cells")
    rows = cells.to_dicts()
    strategies = [_strategy(row) for row in rows]
    params = [s.shown_params() if s is not None else {} for s in strategies]
    varying: dict[str, set[str]] = {}
    for row, p in zip(rows, params, strict=True):
        seen = varying.setdefault(row["strategy"], set())
        seen.update(p)
    shown: dict[str, list[str]] = {}
    for strategy, keys in varying.items():
        values = [(p, r) for p, r in zip(params, rows, strict=True) if r["strategy"] == strategy]
        shown[strategy] = sorted(k for k in keys if len({json.dumps(p.get(k)) for p, _ in values}) > 1)
    verifiers = {r.get("verifier") for r in rows if r.get("verifier") is not None}
    aggregations = {r.get("aggregation") for r in rows if r.get("verifier") is not None}
    display = short_names(verifiers)
    out = []
    for row, p, strategy in zip(rows, params, strategies, strict=True):
        label = row["strategy"]
        keys = shown[row["strategy"]]
        if keys:
            label += "[" + ",".join(f"{k}={p.get(k)}" for k in keys) + "]"
        base = label
        if len(verifiers) > 1 and row.get("verifier") is not None:
            label += f"@{display[row['verifier']]}"
        if len(aggregations) > 1 and row.get("verifier") is not None:
            label += f"/{row.get('aggregation')}"
            base += f"/{row.get('aggregation')}"
        out.append(
            {
                "cell_id": str(row["cell_id"]),
                "model": str(row["model"]),
                "dataset": str(row["dataset"]),
                "strategy": str(row["strategy"]),
                "config": label,
                "base_config": base,
                "verifier": row.get("verifier"),
                "aggregation": row.get("aggregation"),
                "n_cell": int(row["n"]),
                "seed": int(row["seed"]),
                "prefix_unit": strategy.prefix_unit if strategy is not None else None,
            }
        )
    schema = {
        "cell_id": pl.String,
        "model": pl.String,
        "dataset": pl.String,
        "strategy": pl.String,
        "config": pl.String,
        "base_config": pl.String,
        "verifier": pl.String,
        "aggregation": pl.String,
        "n_cell": pl.Int64,
        "seed": pl.Int64,
        "prefix_unit": pl.Int64,
    }
    return pl.DataFrame(out, schema=schema, orient="row") if out else pl.DataFrame(schema=schema)


def budget_is_run(n: pl.Expr, n_cell: pl.Expr, prefix_unit: pl.Expr) -> pl.Expr:
    """Whether the first n candidates of a cell stand for a run at budget n.

    True at n = N, and at multiples of the cell's `prefix_unit` for strategies whose smaller
    budgets are prefixes of the larger (every n for independent samples, whole subtrees for
    DVTS); a beam search at N=64 cut to its first 4 candidates is not a beam search at N=4.
    """
    return (n == n_cell) | (prefix_unit.is_not_null() & (n % prefix_unit.fill_null(1) == 0))
