"""channels streams follows search notifications

Revision ID: 0002_channels_streams
Revises: 0001_accounts
Create Date: 2026-11-24 10:01:41.402132
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stagecast.db.base
from stagecast.db.base import new_id, utcnow

revision: str = "0002_channels_streams"
down_revision: str | None = "0001_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("slug", name=op.f("uq_categories_slug")),
    )
    op.create_table(
        "search_documents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_documents")),
        sa.UniqueConstraint("kind", "ref_id", name=op.f("uq_search_documents_kind_ref_id")),
    )
    op.create_table(
        "tags",
        sa.Column("name", sa.String(length=25), nullable=False),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tags")),
    )
    op.create_table(
        "channels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("is_mature", sa.Boolean(), nullable=False),
        sa.Column("avatar_url", sa.String(length=2048), nullable=True),
        sa.Column("banner_url", sa.String(length=2048), nullable=True),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("follower_count", sa.Integer(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["category"],
            ["categories.slug"],
            name=op.f("fk_channels_category_categories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_channels_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("owner_id", name=op.f("uq_channels_owner_id")),
        sa.UniqueConstraint("slug", name=op.f("uq_channels_slug")),
    )
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channels_category"), ["category"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_user_unread", ["user_id", "read_at"], unique=False)

    op.create_table(
        "user_follows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("follower_id", sa.Uuid(), nullable=False),
        sa.Column("followee_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["followee_id"],
            ["users.id"],
            name=op.f("fk_user_follows_followee_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["follower_id"],
            ["users.id"],
            name=op.f("fk_user_follows_follower_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_follows")),
        sa.UniqueConstraint(
            "follower_id", "followee_id", name=op.f("uq_user_follows_follower_id_followee_id")
        ),
    )
    with op.batch_alter_table("user_follows", schema=None) as batch_op:
        batch_op.create_index("ix_user_follows_followee", ["followee_id"], unique=False)

    op.create_table(
        "channel_follows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_follows_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_channel_follows_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_follows")),
        sa.UniqueConstraint(
            "channel_id", "user_id", name=op.f("uq_channel_follows_channel_id_user_id")
        ),
    )
    with op.batch_alter_table("channel_follows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channel_follows_user_id"), ["user_id"], unique=False)

    op.create_table(
        "stream_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_stream_keys_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_keys")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_stream_keys_channel_id")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_stream_keys_key_hash")),
    )
    op.create_table(
        "streams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=140), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("is_mature", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("viewer_count", sa.Integer(), nullable=False),
        sa.Column("peak_viewer_count", sa.Integer(), nullable=False),
        sa.Column("viewer_seconds", sa.BigInteger(), nullable=False),
        sa.Column(
            "viewers_sampled_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("total_tokens_received", sa.BigInteger(), nullable=False),
        sa.Column("created_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stagecast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["category"],
            ["categories.slug"],
            name=op.f("fk_streams_category_categories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_streams_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams")),
    )
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_streams_category"), ["category"], unique=False)
        batch_op.create_index("ix_streams_channel_created", ["channel_id", "id"], unique=False)
        batch_op.create_index("ix_streams_status_viewers", ["status", "viewer_count"], unique=False)

    op.create_table(
        "stream_tags",
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_stream_tags_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", "tag", name=op.f("pk_stream_tags")),
    )
    with op.batch_alter_table("stream_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stream_tags_tag"), ["tag"], unique=False)

    _create_search_index()
    _seed_categories()


# Categories a new install starts with; admins add more through the API.
CATEGORIES = [
    ("just-chatting", "Just Chatting"),
    ("music", "Music"),
    ("gaming", "Gaming"),
    ("art", "Art"),
    ("irl", "IRL"),
    ("talk-shows", "Talk Shows & Podcasts"),
    ("education", "Education"),
    ("science-technology", "Science & Technology"),
    ("software-development", "Software & Game Development"),
    ("sports", "Sports"),
    ("fitness", "Fitness & Health"),
    ("food-drink", "Food & Drink"),
    ("travel-outdoors", "Travel & Outdoors"),
    ("makers-crafting", "Makers & Crafting"),
    ("special-events", "Special Events"),
]


def _seed_categories() -> None:
    table = sa.table(
        "categories",
        sa.column("id", sa.Uuid()),
        sa.column("slug", sa.String()),
        sa.column("name", sa.String()),
        sa.column("created_at", stagecast.db.base.UTCDateTime()),
    )
    now = utcnow()
    op.bulk_insert(
        table, [{"id": new_id(), "slug": s, "name": n, "created_at": now} for s, n in CATEGORIES]
    )


def _create_search_index() -> None:
    """The full-text side of search_documents, which each database does its own way."""
    if op.get_bind().dialect.name == "sqlite":
        # An external-content FTS5 table with the trigram tokenizer (substring and fuzzy
        # candidates), kept in step with search_documents by triggers.
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5("
            "title, body, content='search_documents', content_rowid='id', tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN "
            "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, title, body) "
            "VALUES ('delete', old.id, old.title, old.body); END"
        )
        op.execute(
            "CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, title, body) "
            "VALUES ('delete', old.id, old.title, old.body); "
            "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END"
        )
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_search_documents_trgm ON search_documents "
            "USING gin ((title || ' ' || body) gin_trgm_ops)"
        )
        op.execute(
            "CREATE INDEX ix_search_documents_tsv ON search_documents "
            "USING gin (to_tsvector('simple', title || ' ' || body))"
        )


def _drop_search_index() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("search_documents_ai", "search_documents_ad", "search_documents_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_documents_trgm")
        op.execute("DROP INDEX IF EXISTS ix_search_documents_tsv")


def downgrade() -> None:
    _drop_search_index()
    with op.batch_alter_table("stream_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stream_tags_tag"))

    op.drop_table("stream_tags")
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_index("ix_streams_status_viewers")
        batch_op.drop_index("ix_streams_channel_created")
        batch_op.drop_index(batch_op.f("ix_streams_category"))

    op.drop_table("streams")
    op.drop_table("stream_keys")
    with op.batch_alter_table("channel_follows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_follows_user_id"))

    op.drop_table("channel_follows")
    with op.batch_alter_table("user_follows", schema=None) as batch_op:
        batch_op.drop_index("ix_user_follows_followee")

    op.drop_table("user_follows")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user_unread")

    op.drop_table("notifications")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channels_category"))

    op.drop_table("channels")
    op.drop_table("tags")
    op.drop_table("search_documents")
    op.drop_table("categories")
