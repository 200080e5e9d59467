"""profiles' dates of birth stored encrypted, as the KYC record's are

Revision ID: 0018_sealed_birth_dates
Revises: 0017_moderation_queue
Create Date: 2026-12-02 18:50:00.000000

A date of birth is personal data that a database leak should not give away; the profile kept
it in clear beside the KYC record that sealed it. The dates already stored are sealed here
with the server secret, which `stagecast db upgrade` (and `serve` with auto-migrate) passes
in; a database holding dates cannot be upgraded without it.
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import context, op

from stagecast.crypto import SecretBox

revision: str = "0018_sealed_birth_dates"
down_revision: str | None = "0017_moderation_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: accounts.service.BIRTH_DATE_PURPOSE when this migration was written.
PURPOSE = "date-of-birth"

users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("date_of_birth", sa.Date()),
    sa.column("date_of_birth_encrypted", sa.Text()),
)


def _box(rows: int) -> SecretBox:
    """The box that seals `rows` dates; without rows to seal the secret is not needed."""
    secret = context.config.attributes.get("secret")
    if rows and not secret:
        raise RuntimeError(
            f"{rows} dates of birth are to be encrypted with the server secret; "
            "run `stagecast db upgrade`, which reads it"
        )
    return SecretBox(secret or b"unused")


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(users.c.id, users.c.date_of_birth).where(users.c.date_of_birth.is_not(None))
    ).all()
    box = _box(len(rows))  # before any change: without the secret, nothing changes
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("date_of_birth_encrypted", sa.Text(), nullable=True))
    for user_id, born in rows:
        bind.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(date_of_birth_encrypted=box.encrypt(PURPOSE, born.isoformat()))
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("date_of_birth")


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(users.c.id, users.c.date_of_birth_encrypted).where(
            users.c.date_of_birth_encrypted.is_not(None)
        )
    ).all()
    box = _box(len(rows))
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("date_of_birth", sa.Date(), nullable=True))
    for user_id, sealed in rows:
        raw = box.decrypt(PURPOSE, sealed)
        bind.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(date_of_birth=date.fromisoformat(raw) if raw else None)
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("date_of_birth_encrypted")
