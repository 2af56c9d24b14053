"""The results store's tables, as SQLAlchemy 2.0 typed ORM models. Alembic owns the DDL:
migrations/versions/ must match these models (a test runs the autogenerate comparison).

Keys are natural, so a retried write can be recognised and skipped (docs/store.md):
- `sweeps.id`: first 16 hex of the sweep spec hash; `(name, spec_hash)` is unique.
- `cells.id`: `CellSpec.cell_id` (16 hex of the canonical JSON's sha256).
- `sweep_cells`: a cell may belong to several sweeps (same grid point in two sweeps is the
  same work), so membership is a link table rather than a column on `cells`.
- `problems`: `(dataset, problem_id)`; `problem_runs`: `(cell_id, problem_id)` — a row here
  means the problem is done for that cell; `candidates`, `nodes`, `verdicts` hang off it.
- `problem_claims`: `(cell_id, problem_id)` — a row here means a run is computing the problem
  now (`store.claims`); it goes when the problem is stored.

The bulk tables (`candidates`, `nodes`, `verdicts`) carry no foreign key to `problem_runs`:
PostgreSQL checks a foreign key row by row, which cut COPY from 141k to 48k rows/s here
(benchmarks/RESULTS.md). The writer keeps them consistent instead: it writes a problem's
rows only in the transaction that inserts its `problem_runs` row.

Text columns hold text encoded by `store.encoding` (NUL and lone surrogates escaped); score
lists are JSON arrays in text columns; timestamps are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUSES = ("pending", "running", "done", "failed", "cancelled")
"""Allowed values of `sweeps.status` and `cells.status`."""

_STATUS_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES))


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both engines (SQLite keeps no offset, so it is
    stored naive-in-UTC there and marked UTC again on the way out). Naive input is a bug."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


# Short aliases: every id is 16 hex chars; enum-like names are short registered strings.
_ID = sa.String(16)
_NAME = sa.String(32)


class Sweep(Base):
    __tablename__ = "sweeps"
    __table_args__ = (
        sa.UniqueConstraint("name", "spec_hash"),
        sa.CheckConstraint(_STATUS_SQL, name="status"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    """First 16 hex chars of `spec_hash`."""
    name: Mapped[str] = mapped_column(sa.String(200))
    spec: Mapped[str] = mapped_column(sa.Text)
    """The spec exactly as submitted (YAML or JSON text)."""
    spec_hash: Mapped[str] = mapped_column(sa.String(64))
    """sha256 of the validated spec's canonical JSON: reformatting the YAML keeps the hash."""
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    code_version: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(_NAME)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mlflow_run_id: Mapped[str | None] = mapped_column(sa.String(64))
    prefect_flow_run_id: Mapped[str | None] = mapped_column(sa.String(64))


class Cell(Base):
    __tablename__ = "cells"
    __table_args__ = (sa.CheckConstraint(_STATUS_SQL, name="status"),)

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    """`CellSpec.cell_id`."""
    model: Mapped[str] = mapped_column(sa.String)
    verifier: Mapped[str | None] = mapped_column(sa.String)
    aggregation: Mapped[str] = mapped_column(_NAME)
    strategy: Mapped[str] = mapped_column(_NAME)
    n: Mapped[int] = mapped_column(sa.Integer)
    """N: the budget (samples, or generations per step)."""
    beam_width: Mapped[int | None] = mapped_column(sa.Integer)
    """M, for beam_search/dvts."""
    dataset: Mapped[str] = mapped_column(sa.String)
    """`DatasetSpec.label` (dataset name, or the JSONL path)."""
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    spec: Mapped[str] = mapped_column(sa.Text)
    """`CellSpec.canonical_json()` verbatim: its sha256 prefix is the id, so keep it byte-exact."""
    n_problems: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    """Problems the cell's dataset holds (known when it is planned): progress is stored /
    this, without loading the dataset again. 0 for cells stored before it was recorded."""
    fidelity: Mapped[str] = mapped_column(_NAME, server_default="ttscale")
    """`CellSpec.fidelity` (also in `spec`): `ttscale` or `search-and-learn` (docs/fidelity.md)."""
    source_cell_id: Mapped[str | None] = mapped_column(_ID, index=True)
    """The larger-budget cell whose first n candidates this cell reuses. No foreign key on
    purpose: cells of a sweep may be registered in any order, in separate transactions."""
    status: Mapped[str] = mapped_column(_NAME)
    code_version: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    n_prompt_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    n_prompt_tokens_computed: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    n_generated_tokens: Mapped[int | None] = mapped_column(sa.BigInteger)
    """Null when a problem of the cell has no recorded token count (an imported file without them)."""
    n_verifier_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    policy_flops: Mapped[float] = mapped_column(sa.Double)
    """FLOPs charged as the reference does (2 · policy_params · generated tokens). Cell totals of
    FLOPs are doubles: a 70B model passes int64 after ~6.6e7 tokens."""
    policy_flops_computed: Mapped[float] = mapped_column(sa.Double, server_default="0")
    """FLOPs the engine computed: 2 · policy_params · (prompt tokens not served from its prefix
    cache + generated tokens)."""
    verifier_flops: Mapped[float] = mapped_column(sa.Double)
    policy_params: Mapped[int] = mapped_column(sa.BigInteger)
    verifier_params: Mapped[int] = mapped_column(sa.BigInteger)
    mlflow_run_id: Mapped[str | None] = mapped_column(sa.String(64))
    prefect_flow_run_id: Mapped[str | None] = mapped_column(sa.String(64))


class SweepCell(Base):
    __tablename__ = "sweep_cells"

    sweep_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    cell_id: Mapped[str] = mapped_column(
        _ID, sa.ForeignKey("cells.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ProblemRow(Base):
    """A benchmark problem (`tree.Problem`); shared by every cell that runs it."""

    __tablename__ = "problems"

    dataset: Mapped[str] = mapped_column(sa.String, primary_key=True)
    problem_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    text: Mapped[str] = mapped_column(sa.Text)
    answer: Mapped[str] = mapped_column(sa.Text)
    level: Mapped[int | None] = mapped_column(sa.Integer)
    subject: Mapped[str | None] = mapped_column(sa.String)
    metadata_json: Mapped[str] = mapped_column("metadata", sa.Text)
    """`Problem.metadata` as JSON (attribute renamed: `metadata` is taken by the ORM)."""


class ProblemRun(Base):
    """One problem done in one cell; its existence is what resume checks."""

    __tablename__ = "problem_runs"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["dataset", "problem_id"], ["problems.dataset", "problems.problem_id"], ondelete="CASCADE"
        ),
    )

    cell_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("cells.id", ondelete="CASCADE"), primary_key=True)
    problem_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    dataset: Mapped[str] = mapped_column(sa.String)
    """`Problem.dataset`, so the row joins `problems` exactly."""
    n_prompt_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    """Prompt tokens of the policy's requests, once per request (`tree.ProblemResult`)."""
    n_prompt_tokens_computed: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    """Prompt tokens the engine computed, not served from its prefix cache."""
    n_generated_tokens: Mapped[int | None] = mapped_column(sa.BigInteger)
    """Generated plus lookahead tokens: everything the policy generated for the problem (null:
    not recorded, as in a search-and-learn DVTS file)."""
    n_verifier_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    n_policy_calls: Mapped[int] = mapped_column(sa.Integer)
    policy_flops: Mapped[int | None] = mapped_column(sa.BigInteger)
    """Charged as the reference does: 2 × policy_params × generated tokens (Snell et al. 2024)."""
    policy_flops_computed: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    """Computed: 2 × policy_params × (prompt tokens computed + generated tokens)."""
    verifier_flops: Mapped[int] = mapped_column(sa.BigInteger)
    """2 × verifier_params × verifier tokens."""
    elapsed_s: Mapped[float] = mapped_column(sa.Double)
    """The shard's wall-clock time split evenly over its problems: strategies batch across
    problems, so one problem's own time is not separable."""
    n_candidates: Mapped[int] = mapped_column(sa.Integer)
    n_nodes: Mapped[int] = mapped_column(sa.Integer)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CandidateRow(Base):
    """`tree.Candidate`: one final solution; `idx` order is the generation order."""

    __tablename__ = "candidates"
    cell_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    problem_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    idx: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    text: Mapped[str] = mapped_column(sa.Text)
    answer: Mapped[str | None] = mapped_column(sa.Text)
    answer_method: Mapped[str | None] = mapped_column(_NAME)
    answer_class: Mapped[int] = mapped_column(sa.Integer)
    correct: Mapped[bool | None] = mapped_column(sa.Boolean)
    score: Mapped[float | None] = mapped_column(sa.Double)
    step_scores: Mapped[str] = mapped_column(sa.Text)
    """JSON array of floats, root to leaf."""
    n_prompt_tokens: Mapped[int] = mapped_column(sa.Integer)
    n_generated_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    """Generated tokens on the candidate's path (null: not recorded)."""
    policy_flops: Mapped[int | None] = mapped_column(sa.BigInteger)
    """Charged: 2 × policy_params × the path's generated tokens."""
    policy_flops_computed: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    """The problem's computed FLOPs allotted by the candidate's share of its generated tokens
    (a shared prompt or path is computed once for all candidates that use it)."""
    finish_reason: Mapped[str] = mapped_column(_NAME)
    leaf_node: Mapped[int] = mapped_column(sa.Integer)


class NodeRow(Base):
    """`tree.Node`: one step of a problem's search tree."""

    __tablename__ = "nodes"
    cell_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    problem_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    node_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(sa.Integer)
    depth: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(_NAME)
    text: Mapped[str] = mapped_column(sa.Text)
    n_prompt_tokens: Mapped[int] = mapped_column(sa.Integer)
    n_generated_tokens: Mapped[int] = mapped_column(sa.Integer)
    n_lookahead_tokens: Mapped[int] = mapped_column(sa.Integer)
    n_cached_prompt_tokens: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    """Of `n_prompt_tokens`, those the engine's prefix cache served for the request."""
    scores: Mapped[str] = mapped_column(sa.Text)
    """JSON array of floats: one per `\\n\\n` step in `text`."""
    n_verifier_tokens: Mapped[int] = mapped_column(sa.Integer)
    finish_reason: Mapped[str] = mapped_column(_NAME)
    selected: Mapped[bool] = mapped_column(sa.Boolean)
    pruned: Mapped[bool] = mapped_column(sa.Boolean)
    weight: Mapped[float | None] = mapped_column(sa.Double)
    """Particle filtering: the node's share of its problem's particles at the last resampling it
    took part in (`tree.Node.weight`); null for other strategies."""


class VerdictRow(Base):
    """`tree.Verdict`: the answer a selection method picks from a problem's first n candidates."""

    __tablename__ = "verdicts"
    cell_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    problem_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    source: Mapped[str] = mapped_column(_NAME, primary_key=True, server_default="ttscale")
    """`ttscale` (judged by ttscale from the candidates) or `published` (the prediction a
    search-and-learn file came with, graded by ttscale: `ttscale import`)."""
    method: Mapped[str] = mapped_column(_NAME, primary_key=True)
    n: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    answer: Mapped[str | None] = mapped_column(sa.Text)
    correct: Mapped[float] = mapped_column(sa.Double)
    """1.0 or 0.0 for a selection method; for `pass`, the unbiased pass@n estimate over all of
    the problem's N candidates (`analysis.passk`): one definition, stored and analysed alike."""


class ProblemClaim(Base):
    """A run computing one problem of one cell right now (`store.claims`): deleted in the
    transaction that stores the problem, or taken over once it lapses. No foreign key to
    `cells`: a shard claims before it registers its cell (it may find nothing left to do)."""

    __tablename__ = "problem_claims"

    cell_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    problem_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(64), index=True)
    """The claiming run: a fresh id per `runner.run_shard` call."""
    host: Mapped[str] = mapped_column(sa.String(255))
    """`socket.gethostname()` of the claiming process."""
    pid: Mapped[int] = mapped_column(sa.Integer)
    """Its process id: on the same host, a claim of a process that is gone is free at once."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """When the claim lapses unless its run's heartbeat extends it."""


metadata = Base.metadata
sweeps = Sweep.__table__
cells = Cell.__table__
sweep_cells = SweepCell.__table__
problems = ProblemRow.__table__
problem_runs = ProblemRun.__table__
candidates = CandidateRow.__table__
nodes = NodeRow.__table__
verdicts = VerdictRow.__table__
problem_claims = ProblemClaim.__table__
