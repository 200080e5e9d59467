"""moderation queue: cases grouping reports and flags, automatic chat flags, reports' cases

Revision ID: 0017_moderation_queue
Revises: 0016_kyc_privacy
Create Date: 2026-12-02 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stagecast.db.base

revision: str = "0017_moderation_queue"
down_revision: str | None = "0016_kyc_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "moderation_cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("content_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "first_reported_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("last_reported_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("decision_action", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_moderation_cases_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_cases")),
    )
    with op.batch_alter_table("moderation_cases", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_cases_status", ["status", "id"], unique=False)
        batch_op.create_index(
            "uq_moderation_cases_open",
            ["content_type", "content_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "moderation_flags",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("content_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["moderation_cases.id"],
            name=op.f("fk_moderation_flags_case_id_moderation_cases"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_moderation_flags_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_moderation_flags_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_flags")),
    )
    with op.batch_alter_table("moderation_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_moderation_flags_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_moderation_flags_channel", ["channel_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_moderation_flags_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_moderation_flags_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("case_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_reports_case_id"), ["case_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_reports_case_id_moderation_cases"),
            "moderation_cases",
            ["case_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_reports_case_id_moderation_cases"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_reports_case_id"))
        batch_op.drop_column("resolution")
        batch_op.drop_column("case_id")

    with op.batch_alter_table("moderation_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_moderation_flags_user_id"))
        batch_op.drop_index(batch_op.f("ix_moderation_flags_kind"))
        batch_op.drop_index("ix_moderation_flags_channel")
        batch_op.drop_index(batch_op.f("ix_moderation_flags_case_id"))
    op.drop_table("moderation_flags")

    with op.batch_alter_table("moderation_cases", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_moderation_cases_open",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_moderation_cases_status")
    op.drop_table("moderation_cases")
