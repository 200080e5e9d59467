"""Alembic is the only way the schema changes: the migrations must match the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from stagecast.db import migrate
from stagecast.db.base import Base
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
