"""Claims: which run is computing which problem of a cell right now (`store.claims`).

`problem_claims` has a row per (cell, problem) a run has claimed and not yet stored: its
owner (one `runner.run_shard` call), host, process id and when the claim lapses. A second run
of the same cell defers a claimed problem instead of computing it twice. No foreign key to
`cells`: a shard claims before it registers its cell.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "problem_claims",
        sa.Column("cell_id", sa.String(length=16), nullable=False),
        sa.Column("problem_id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cell_id", "problem_id", name=op.f("pk_problem_claims")),
    )
    op.create_index(op.f("ix_problem_claims_owner"), "problem_claims", ["owner"])


def downgrade() -> None:
    # Claims are transient: dropping them only lets runs in flight be computed twice.
    op.drop_index(op.f("ix_problem_claims_owner"), table_name="problem_claims")
    op.drop_table("problem_claims")
