"""vods: visibility, seek previews, watch progress; reports of content

Revision ID: 0012_vods
Revises: 0011_clips
Create Date: 2026-12-02 00:53:23.509936
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stagecast.db.base

revision: str = "0012_vods"
down_revision: str | None = "0011_clips"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("content_id", sa.Uuid(), nullable=False),
        sa.Column("reporter_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["users.id"],
            name=op.f("fk_reports_reporter_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["users.id"],
            name=op.f("fk_reports_resolved_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_reporter_id"), ["reporter_id"], unique=False)
        batch_op.create_index(
            "ix_reports_status_content", ["status", "content_type", "content_id"], unique=False
        )
        batch_op.create_index(
            "uq_reports_pending",
            ["reporter_id", "content_type", "content_id"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "vod_progress",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("vod_id", sa.Uuid(), nullable=False),
        sa.Column("position_seconds", sa.Double(), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_vod_progress_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vod_id"], ["vods.id"], name=op.f("fk_vod_progress_vod_id_vods"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "vod_id", name=op.f("pk_vod_progress")),
    )
    with op.batch_alter_table("vod_progress", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vod_progress_vod_id"), ["vod_id"], unique=False)

    with op.batch_alter_table("vods", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("visibility", sa.String(length=16), server_default="public", nullable=False)
        )
        batch_op.add_column(sa.Column("previews_key", sa.String(length=300), nullable=True))
        batch_op.add_column(
            sa.Column(
                "previews_failed_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "timeline",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("vods", schema=None) as batch_op:
        batch_op.drop_column("timeline")
        batch_op.drop_column("previews_failed_at")
        batch_op.drop_column("previews_key")
        batch_op.drop_column("visibility")

    with op.batch_alter_table("vod_progress", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vod_progress_vod_id"))

    op.drop_table("vod_progress")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_reports_pending",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index("ix_reports_status_content")
        batch_op.drop_index(batch_op.f("ix_reports_reporter_id"))

    op.drop_table("reports")
