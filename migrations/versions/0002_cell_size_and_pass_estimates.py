"""Cells record their number of problems; verdicts hold pass@n estimates.

- `cells.n_problems`: the problems of the cell's dataset, written when the cell is planned, so
  progress never reloads a dataset (0 for cells stored before this revision).
- `verdicts.correct` becomes a double: 1/0 for selection methods, and for `pass` the unbiased
  pass@n estimate over all N candidates (Chen et al. 2021), the definition analysis uses.
  Earlier `pass` rows (any correct among the first n) are kept as 1.0/0.0.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cells") as batch:
        batch.add_column(sa.Column("n_problems", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("verdicts") as batch:
        batch.alter_column(
            "correct",
            existing_type=sa.Boolean(),
            type_=sa.Double(),
            existing_nullable=False,
            postgresql_using="correct::int::double precision",
        )


def downgrade() -> None:
    # Lossy for `pass`: an estimate below 1 becomes false.
    with op.batch_alter_table("verdicts") as batch:
        batch.alter_column(
            "correct",
            existing_type=sa.Double(),
            type_=sa.Boolean(),
            existing_nullable=False,
            postgresql_using="(correct >= 1.0)",
        )
    with op.batch_alter_table("cells") as batch:
        batch.drop_column("n_problems")
