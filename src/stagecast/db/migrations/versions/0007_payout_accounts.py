"""payout accounts: each creator's account at the payout provider, kept from onboarding

Revision ID: 0007_payout_accounts
Revises: 0006_list_indexes
Create Date: 2026-12-01 20:32:46.279673
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stagecast.db.base

revision: str = "0007_payout_accounts"
down_revision: str | None = "0006_list_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payout_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account_ref", sa.String(length=255), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_payout_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_accounts")),
        sa.UniqueConstraint(
            "user_id", "provider", name=op.f("uq_payout_accounts_user_id_provider")
        ),
    )


def downgrade() -> None:
    op.drop_table("payout_accounts")
