"""Cells record their fidelity; FLOPs charged and computed; published verdicts beside ttscale's.

- `cells.fidelity`: the cell's fidelity profile (`ttscale` for cells stored before).
- FLOPs in two conventions (docs/fidelity.md): `policy_flops` is now what the reference charges,
  2 · policy_params · generated tokens, recomputed here from the stored counts; the old figure
  (every prompt token counted in full, no prefix cache) moves to `policy_flops_computed`, an upper
  bound of what the engine computed, which new rows record exactly (`n_prompt_tokens_computed`:
  prompt tokens not served from the prefix cache; nodes record `n_cached_prompt_tokens`).
- Generated-token counts may be null (an imported file that did not record them).
- `verdicts.source` (`ttscale` or `published`) joins the key, so an import keeps the
  reference's own predictions beside ttscale's.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARAMS = "(SELECT policy_params FROM cells WHERE cells.id = {table}.cell_id)"
_VERDICT_KEY = ["cell_id", "problem_id", "method", "n"]


def _generated_type(table: str) -> sa.types.TypeEngine:
    return sa.Integer() if table == "candidates" else sa.BigInteger()


def _counts(table: str, *, flops_type: sa.types.TypeEngine, with_prompt: bool) -> None:
    """The computed-FLOPs column (and the computed-prompt count), nullable generated tokens."""
    with op.batch_alter_table(table) as batch:
        if with_prompt:
            batch.add_column(sa.Column("n_prompt_tokens_computed", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("policy_flops_computed", flops_type, server_default="0", nullable=False))
        batch.alter_column("n_generated_tokens", existing_type=_generated_type(table), nullable=True)
        if table != "cells":
            batch.alter_column("policy_flops", existing_type=sa.BigInteger(), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("cells") as batch:
        batch.add_column(sa.Column("fidelity", sa.String(length=32), server_default="ttscale", nullable=False))
    _counts("cells", flops_type=sa.Double(), with_prompt=True)
    _counts("problem_runs", flops_type=sa.BigInteger(), with_prompt=True)
    _counts("candidates", flops_type=sa.BigInteger(), with_prompt=False)
    op.execute("UPDATE cells SET policy_flops_computed = policy_flops, policy_flops = 2.0 * policy_params * n_generated_tokens")
    for table in ("problem_runs", "candidates"):
        params = _PARAMS.format(table=table)
        op.execute(f"UPDATE {table} SET policy_flops_computed = policy_flops, policy_flops = 2 * {params} * n_generated_tokens")
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("n_cached_prompt_tokens", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(sa.Column("source", sa.String(length=32), server_default="ttscale", nullable=False))
        batch.drop_constraint("pk_verdicts", type_="primary")
        batch.create_primary_key("pk_verdicts", ["cell_id", "problem_id", "source", "method", "n"])


def downgrade() -> None:
    # Lossy: published verdicts are dropped and FLOPs go back to the one (computed) figure.
    op.execute("DELETE FROM verdicts WHERE source <> 'ttscale'")
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_constraint("pk_verdicts", type_="primary")
        batch.create_primary_key("pk_verdicts", _VERDICT_KEY)
        batch.drop_column("source")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("n_cached_prompt_tokens")
    for table in ("cells", "problem_runs", "candidates"):
        op.execute(f"UPDATE {table} SET policy_flops = policy_flops_computed, n_generated_tokens = COALESCE(n_generated_tokens, 0)")
        with op.batch_alter_table(table) as batch:
            batch.drop_column("policy_flops_computed")
            if table != "candidates":
                batch.drop_column("n_prompt_tokens_computed")
            batch.alter_column("n_generated_tokens", existing_type=_generated_type(table), nullable=False)
            if table != "cells":
                batch.alter_column("policy_flops", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("cells") as batch:
        batch.drop_column("fidelity")
