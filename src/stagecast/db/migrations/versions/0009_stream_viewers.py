"""stream viewers, readied streams, seed 002's example category

Revision ID: 0009_stream_viewers
Revises: 0008_media_nodes
Create Date: 2026-12-01 20:14:36.343705
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stagecast.db.base
from stagecast.db.base import new_id, utcnow

revision: str = "0009_stream_viewers"
down_revision: str | None = "0008_media_nodes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Seed 002's example stream is in `entertainment`; a seed client's first POST /streams uses it.
NEW_CATEGORIES = [("entertainment", "Entertainment")]


def upgrade() -> None:
    op.create_table(
        "stream_viewers",
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("joined_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_stream_viewers_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_viewers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", "user_id", name=op.f("pk_stream_viewers")),
    )
    with op.batch_alter_table("stream_viewers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stream_viewers_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ready_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True)
        )

    _add_categories()


def _add_categories() -> None:
    # Only the missing ones: an admin may have made one of them already.
    connection = op.get_bind()
    categories = sa.table(
        "categories",
        sa.column("id", sa.Uuid()),
        sa.column("slug", sa.String()),
        sa.column("name", sa.String()),
        sa.column("created_at", stagecast.db.base.UTCDateTime()),
    )
    existing = set(connection.scalars(sa.select(categories.c.slug)))
    now = utcnow()
    rows = [
        {"id": new_id(), "slug": slug, "name": name, "created_at": now}
        for slug, name in NEW_CATEGORIES
        if slug not in existing
    ]
    if rows:
        op.bulk_insert(categories, rows)


def downgrade() -> None:
    # The categories stay: channels and streams may be filed under them by now.
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_column("ready_at")

    with op.batch_alter_table("stream_viewers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stream_viewers_user_id"))

    op.drop_table("stream_viewers")
