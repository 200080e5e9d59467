"""chat moderation

Revision ID: 0003_chat_moderation
Revises: 0002_channels_streams
Create Date: 2026-11-24 10:24:08.988244
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stagecast.db.base

revision: str = "0003_chat_moderation"
down_revision: str | None = "0002_channels_streams"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_bans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("moderator_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_bans_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["moderator_id"],
            ["users.id"],
            name=op.f("fk_channel_bans_moderator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_channel_bans_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_bans")),
        sa.UniqueConstraint(
            "channel_id", "user_id", name=op.f("uq_channel_bans_channel_id_user_id")
        ),
    )
    with op.batch_alter_table("channel_bans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channel_bans_user_id"), ["user_id"], unique=False)

    op.create_table(
        "channel_moderators",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_moderators_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_channel_moderators_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_moderators")),
        sa.UniqueConstraint(
            "channel_id", "user_id", name=op.f("uq_channel_moderators_channel_id_user_id")
        ),
    )
    with op.batch_alter_table("channel_moderators", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_moderators_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("stream_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("reply_to_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_chat_messages_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reply_to_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_messages_reply_to_id_chat_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_chat_messages_stream_id_streams"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_messages_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chat_messages_channel_user", ["channel_id", "user_id", "id"], unique=False
        )
        batch_op.create_index("ix_chat_messages_stream", ["stream_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_messages_stream")
        batch_op.drop_index("ix_chat_messages_channel_user")

    op.drop_table("chat_messages")
    with op.batch_alter_table("channel_moderators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_moderators_user_id"))

    op.drop_table("channel_moderators")
    with op.batch_alter_table("channel_bans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_bans_user_id"))

    op.drop_table("channel_bans")
