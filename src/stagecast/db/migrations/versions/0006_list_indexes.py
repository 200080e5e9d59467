"""list indexes: every list's count (offset pages' `total`) has an index behind it

Revision ID: 0006_list_indexes
Revises: 0005_money
Create Date: 2026-12-01 20:17:42.517190
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_list_indexes"
down_revision: str | None = "0005_money"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_payouts_created_at", "payouts", ["created_at"])
    op.create_index(
        "ix_subscriptions_channel_paid_up",
        "subscriptions",
        ["channel_id", "status", "current_period_end"],
    )
    op.create_index("ix_users_role", "users", ["role"])
    op.create_index("ix_users_status", "users", ["status"])


def downgrade() -> None:
    op.drop_index("ix_users_status", table_name="users")
    op.drop_index("ix_users_role", table_name="users")
    op.drop_index("ix_subscriptions_channel_paid_up", table_name="subscriptions")
    op.drop_index("ix_payouts_created_at", table_name="payouts")
