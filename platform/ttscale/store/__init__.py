"""The results store: SQLAlchemy models, a bulk writer and polars readers (docs/store.md).

SQLite is the embedded default, PostgreSQL the team store; the same code serves both.
Store functions take a Session or Connection and never commit: edges open one with
`transaction(engine)`. Writes are idempotent on natural keys, so a retried shard adds
nothing twice.

Names are imported from their modules on first use (PEP 562), so `ttscale db ...` does not
pay for polars and pydantic, which only readers, writer and export need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "claims": ("ClaimResult", "Claimant", "claim_problems", "extend_claims", "held_problem_ids", "release_claims"),
    "engine": (
        "Connection",
        "Engine",
        "RetryPolicy",
        "connect",
        "is_transient",
        "make_engine",
        "retrying",
        "run_transaction",
        "transaction",
    ),
    "export": ("FORMATS", "export_sweep"),
    "migrate": ("check_reachable_and_migrated", "downgrade", "head_revision", "schema_drift", "upgrade"),
    "session": ("open_engine", "opened"),
    "read": (
        "count_sweeps_and_cells",
        "read_candidates",
        "read_cell",
        "read_cells",
        "read_nodes",
        "read_problem_result",
        "read_problem_runs",
        "read_problems",
        "read_problems_of_cells",
        "read_nodes_of_cells",
        "read_sweep",
        "read_sweeps",
        "read_verdicts",
    ),
    "roles": ("create_reader_role",),
    "provenance": ("code_version",),
    "writer": (
        "WriteReport",
        "done_problem_ids",
        "register_cell",
        "register_sweep",
        "set_cell_status",
        "set_sweep_status",
        "spec_hash",
        "write_shard",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ttscale.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ttscale.store.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from ttscale.store.claims import ClaimResult, Claimant, claim_problems, extend_claims, held_problem_ids, release_claims
    from ttscale.store.engine import (
        Connection,
        Engine,
        RetryPolicy,
        connect,
        is_transient,
        make_engine,
        retrying,
        run_transaction,
        transaction,
    )
    from ttscale.store.export import FORMATS, export_sweep
    from ttscale.store.migrate import check_reachable_and_migrated, downgrade, head_revision, schema_drift, upgrade
    from ttscale.store.session import open_engine, opened
    from ttscale.store.read import (
        count_sweeps_and_cells,
        read_candidates,
        read_cell,
        read_cells,
        read_nodes,
        read_problem_result,
        read_problem_runs,
        read_problems,
        read_problems_of_cells,
        read_nodes_of_cells,
        read_sweep,
        read_sweeps,
        read_verdicts,
    )
    from ttscale.store.roles import create_reader_role
    from ttscale.store.provenance import code_version
    from ttscale.store.writer import (
        WriteReport,
        done_problem_ids,
        register_cell,
        register_sweep,
        set_cell_status,
        set_sweep_status,
        spec_hash,
        write_shard,
    )
