"""Alembic is the only way the schema changes: the migrations must match the models."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from stagecast.accounts import service as accounts
from stagecast.crypto import SecretBox
from stagecast.db import migrate
from stagecast.db.base import Base, UTCDateTime
from stagecast.db.engine import create_engine
from stagecast.models import import_all_models
from tests.conftest import fresh_database_url


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": migrate.include_object}
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    names = set(inspect(connection).get_table_names()) - {"alembic_version"}
    return {n for n in names if not n.startswith(migrate.DIALECT_ONLY_OBJECTS)}


async def test_migrations_match_the_models(database_url: str) -> None:
    import_all_models()
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
        assert await connection.run_sync(migrate.current_revision) == migrate.head_revision()
    await engine.dispose()


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path, "roundtrip")
    import_all_models()

    async def tables() -> set[str]:
        engine = create_engine(url)
        async with engine.connect() as connection:
            found = await connection.run_sync(_tables)
        await engine.dispose()
        return found

    migrate.upgrade(url)
    assert asyncio.run(tables()) == set(Base.metadata.tables)
    migrate.downgrade(url, "base")
    assert asyncio.run(tables()) == set()
    migrate.upgrade(url)
    assert asyncio.run(tables()) == set(Base.metadata.tables)


def test_upgrade_seals_the_dates_of_birth_already_stored(tmp_path: Path) -> None:
    """0018 encrypts the profile's clear dates of birth with the server secret; without the
    secret it refuses before changing anything, and a downgrade gives the dates back."""
    url = fresh_database_url(tmp_path, "births")
    migrate.upgrade(url, "0017_moderation_queue")
    user_id = uuid.uuid4()
    secret = b"a-secret-for-this-test"

    async def run(statement: Any) -> Any:
        engine = create_engine(url)
        async with engine.connect() as connection:
            cursor = await connection.execute(statement)
            result = cursor.all() if cursor.returns_rows else None
            await connection.commit()
        await engine.dispose()
        return result

    now = datetime.now(UTC)
    asyncio.run(
        run(
            sa.text(
                "INSERT INTO users (id, email, username, username_key, display_name, role,"
                " status, email_verified, password_hash, preferences, do_not_sell,"
                " created_at, updated_at, date_of_birth) VALUES (:id, 'born@example.com',"
                " 'born', 'born', 'Born', 'viewer', 'active', false, 'x', '{}', false,"
                " :now, :now, :born)"
            ).bindparams(
                sa.bindparam("id", user_id, type_=sa.Uuid()),
                sa.bindparam("now", now, type_=UTCDateTime()),
                sa.bindparam("born", date(1990, 5, 17), type_=sa.Date()),
            )
        )
    )
    revision = sa.text("SELECT version_num FROM alembic_version")
    with pytest.raises(RuntimeError, match="server secret"):
        migrate.upgrade(url)
    assert asyncio.run(run(revision)) == [("0017_moderation_queue",)]

    migrate.upgrade(url, secret=secret)
    [(sealed,)] = asyncio.run(run(sa.text("SELECT date_of_birth_encrypted FROM users")))
    assert "1990" not in sealed
    assert SecretBox(secret).decrypt(accounts.BIRTH_DATE_PURPOSE, sealed) == "1990-05-17"

    migrate.downgrade(url, "0017_moderation_queue", secret=secret)
    born = sa.select(sa.column("date_of_birth", sa.Date())).select_from(sa.table("users"))
    assert asyncio.run(run(born)) == [(date(1990, 5, 17),)]
