"""media nodes: heartbeats of the nodes packaging live streams

Revision ID: 0008_media_nodes
Revises: 0007_payout_accounts
Create Date: 2026-12-01 20:14:41.856913
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stagecast.db.base

revision: str = "0008_media_nodes"
down_revision: str | None = "0007_payout_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media_nodes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("started_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_nodes")),
    )
    with op.batch_alter_table("media_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_media_nodes_name"), ["name"], unique=False)

    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_column("node_id")

    with op.batch_alter_table("media_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_nodes_name"))

    op.drop_table("media_nodes")
