"""A PostgreSQL server the benchmarks make their own databases on, and drop again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url


def database_url(server_url: str, name: str) -> str:
    """`server_url` (a SQLAlchemy URL) pointing at database `name` instead."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """The plain `postgresql://` form of a SQLAlchemy URL, for asyncpg and libpq tools."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def drop_and_create(server_url: str, name: str, *, create: bool) -> None:
    """Drop database `name` (closing its sessions) and, with `create`, make it afresh."""
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """An empty database `name` on the server for the block (dropped after): its URL."""
    asyncio.run(drop_and_create(server_url, name, create=True))
    try:
        yield database_url(server_url, name)
    finally:
        asyncio.run(drop_and_create(server_url, name, create=False))
