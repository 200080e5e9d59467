"""Alembic, run from code: the only way the schema changes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Made by migrations in each database's own dialect, not described by the models.
DIALECT_ONLY_OBJECTS = ("search_fts", "ix_search_documents_trgm", "ix_search_documents_tsv")


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: leave the dialect-only search objects out of comparisons."""
    return not (reflected and name is not None and name.startswith(DIALECT_ONLY_OBJECTS))


def alembic_config(database_url: str, *, secret: bytes | None = None) -> Config:
    """Alembic's configuration; `secret` (the server secret) lets a migration seal values
    that are stored encrypted from then on (`context.config.attributes["secret"]`)."""
    config = Config()
    config.attributes["secret"] = secret
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", *, secret: bytes | None = None) -> None:
    """Apply pending migrations (synchronous; call it outside a running event loop)."""
    command.upgrade(alembic_config(database_url, secret=secret), revision)


def downgrade(database_url: str, revision: str, *, secret: bytes | None = None) -> None:
    command.downgrade(alembic_config(database_url, secret=secret), revision)


def make_revision(database_url: str, message: str, *, autogenerate: bool = True) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=autogenerate)


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def current_revision(connection: Connection) -> str | None:
    """Return the revision a database is at (sync connection; use run_sync from async)."""
    return MigrationContext.configure(connection).get_current_revision()
