"""tournaments, their participants and matches (fees and prizes go through the ledger)

Revision ID: 0014_tournaments
Revises: 0013_interactions
Create Date: 2026-12-02 00:54:48.379743
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stagecast.db.base

revision: str = "0014_tournaments"
down_revision: str | None = "0013_interactions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tournaments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organiser_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("max_participants", sa.Integer(), nullable=False),
        sa.Column("starts_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entry_fee_tokens", sa.BigInteger(), nullable=False),
        sa.Column(
            "prize_split",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rules", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seeding", sa.String(length=120), nullable=True),
        sa.Column("winner_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organiser_id"],
            ["users.id"],
            name=op.f("fk_tournaments_organiser_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["winner_id"],
            ["users.id"],
            name=op.f("fk_tournaments_winner_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tournaments")),
    )
    with op.batch_alter_table("tournaments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tournaments_organiser_id"), ["organiser_id"], unique=False
        )
        batch_op.create_index("ix_tournaments_status_id", ["status", "id"], unique=False)

    op.create_table(
        "tournament_matches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tournament_id", sa.Uuid(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("player1_id", sa.Uuid(), nullable=True),
        sa.Column("player2_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("winner_id", sa.Uuid(), nullable=True),
        sa.Column("score", sa.String(length=40), nullable=True),
        sa.Column(
            "reports",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("completed_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_tournament_matches_channel_id_channels"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["player1_id"], ["users.id"], name=op.f("fk_tournament_matches_player1_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["player2_id"], ["users.id"], name=op.f("fk_tournament_matches_player2_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["tournament_id"],
            ["tournaments.id"],
            name=op.f("fk_tournament_matches_tournament_id_tournaments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["winner_id"], ["users.id"], name=op.f("fk_tournament_matches_winner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tournament_matches")),
        sa.UniqueConstraint(
            "tournament_id",
            "round",
            "position",
            name=op.f("uq_tournament_matches_tournament_id_round_position"),
        ),
    )
    with op.batch_alter_table("tournament_matches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tournament_matches_completed_at"), ["completed_at"], unique=False
        )

    op.create_table(
        "tournament_participants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tournament_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("placement", sa.Integer(), nullable=True),
        sa.Column("prize_tokens", sa.BigInteger(), nullable=False),
        sa.Column("fee_transaction_id", sa.Uuid(), nullable=True),
        sa.Column("joined_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["fee_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_tournament_participants_fee_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["tournament_id"],
            ["tournaments.id"],
            name=op.f("fk_tournament_participants_tournament_id_tournaments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_tournament_participants_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tournament_participants")),
        sa.UniqueConstraint(
            "tournament_id",
            "user_id",
            name=op.f("uq_tournament_participants_tournament_id_user_id"),
        ),
    )
    with op.batch_alter_table("tournament_participants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tournament_participants_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tournament_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tournament_participants_user_id"))

    op.drop_table("tournament_participants")
    with op.batch_alter_table("tournament_matches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tournament_matches_completed_at"))

    op.drop_table("tournament_matches")
    with op.batch_alter_table("tournaments", schema=None) as batch_op:
        batch_op.drop_index("ix_tournaments_status_id")
        batch_op.drop_index(batch_op.f("ix_tournaments_organiser_id"))

    op.drop_table("tournaments")
