"""vods

Revision ID: 0004_vods
Revises: 0003_chat_moderation
Create Date: 2026-11-25 16:38:04.185676
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stagecast.db.base

revision: str = "0004_vods"
down_revision: str | None = "0003_chat_moderation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vods",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=140), nullable=False),
        sa.Column("duration_seconds", sa.Double(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("playlist_key", sa.String(length=300), nullable=False),
        sa.Column("thumbnail_key", sa.String(length=300), nullable=True),
        sa.Column(
            "renditions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_vods_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_vods_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vods")),
        sa.UniqueConstraint("stream_id", name=op.f("uq_vods_stream_id")),
    )
    with op.batch_alter_table("vods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vods_channel_id"), ["channel_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vods_channel_id"))

    op.drop_table("vods")
