"""purchases remember their checkout and its attempts (made outside transactions, resumed)

Revision ID: 0010_checkout_attempts
Revises: 0009_stream_viewers
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stagecast.db.base

revision: str = "0010_checkout_attempts"
down_revision: str | None = "0009_stream_viewers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("success_url", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("cancel_url", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("checkout_url", sa.String(length=2000), nullable=True))
        # Purchases from before were made in one step: their checkout exists, nothing is due.
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column(
                "next_attempt_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index(
            batch_op.f("ix_purchases_next_attempt_at"), ["next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchases_next_attempt_at"))
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
        batch_op.drop_column("checkout_url")
        batch_op.drop_column("cancel_url")
        batch_op.drop_column("success_url")
