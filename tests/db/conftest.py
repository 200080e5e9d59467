"""A real server (uvicorn, its own engine and pool) on the committed database, with every
statement it sends recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stagecast.config import AdminSettings, Settings
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.realtime.conftest import LiveServer, serving
from tests.statements import StatementLog


def counting_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for a server whose statements are counted."""
    # "Last used" is flushed when the server stops, not while statements are counted; the
    # feature flags and maintenance switch are read once and kept (on a slow machine their
    # 5 s cache ran out between the warm-up and the counted request: 2 statements more).
    values: dict[str, object] = {
        "auth_touch_flush_seconds": 3600,
        "admin": AdminSettings(background=False, switches_cache_seconds=300),
        **overrides,
    }
    return make_settings(tmp_path, database_url, **values)


@pytest.fixture
async def live(tmp_path: Path, committed_database_url: str) -> AsyncIterator[LiveServer]:
    async with serving(counting_settings(tmp_path, committed_database_url)) as live_server:
        yield live_server


@pytest.fixture
def statements(live: LiveServer) -> StatementLog:
    runtime: Runtime = live.app.state.runtime
    return StatementLog(runtime.db.engines).install()
