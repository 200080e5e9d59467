"""clips: ranges of a recording, their likes and counted views

Revision ID: 0011_clips
Revises: 0010_checkout_attempts
Create Date: 2026-12-02 00:54:09.499857
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stagecast.db.base

revision: str = "0011_clips"
down_revision: str | None = "0010_checkout_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clips",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("vod_id", sa.Uuid(), nullable=True),
        sa.Column("creator_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=140), nullable=False),
        sa.Column("source_start", sa.Double(), nullable=False),
        sa.Column("source_end", sa.Double(), nullable=False),
        sa.Column("start", sa.Double(), nullable=False),
        sa.Column("end", sa.Double(), nullable=False),
        sa.Column(
            "segments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("media_state", sa.String(length=16), nullable=False),
        sa.Column("mp4_state", sa.String(length=16), nullable=False),
        sa.Column("render_version", sa.Integer(), nullable=False),
        sa.Column("mp4_key", sa.String(length=300), nullable=True),
        sa.Column("thumbnail_key", sa.String(length=300), nullable=True),
        sa.Column("mp4_duration", sa.Double(), nullable=True),
        sa.Column("view_count", sa.Integer(), nullable=False),
        sa.Column("like_count", sa.Integer(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_clips_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_clips_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_clips_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vod_id"], ["vods.id"], name=op.f("fk_clips_vod_id_vods"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clips")),
    )
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clips_channel_likes", ["channel_id", "like_count", "id"], unique=False
        )
        batch_op.create_index("ix_clips_channel_recent", ["channel_id", "id"], unique=False)
        batch_op.create_index(
            "ix_clips_channel_views", ["channel_id", "view_count", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_clips_creator_id"), ["creator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_clips_stream_id"), ["stream_id"], unique=False)

    op.create_table(
        "clip_likes",
        sa.Column("clip_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_clip_likes_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_clip_likes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("clip_id", "user_id", name=op.f("pk_clip_likes")),
    )
    op.create_table(
        "clip_views",
        sa.Column("clip_id", sa.Uuid(), nullable=False),
        sa.Column("viewer", sa.String(length=80), nullable=False),
        sa.Column("counted_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_clip_views_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("clip_id", "viewer", name=op.f("pk_clip_views")),
    )


def downgrade() -> None:
    op.drop_table("clip_views")
    op.drop_table("clip_likes")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clips_stream_id"))
        batch_op.drop_index(batch_op.f("ix_clips_creator_id"))
        batch_op.drop_index("ix_clips_channel_views")
        batch_op.drop_index("ix_clips_channel_recent")
        batch_op.drop_index("ix_clips_channel_likes")

    op.drop_table("clips")
