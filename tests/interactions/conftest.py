"""A served app with the rooms' windows and the polls' sweep running in the background."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stagecast.config import InteractionSettings
from tests.conftest import make_settings
from tests.realtime.conftest import LiveServer, serving


@pytest.fixture
async def live(tmp_path: Path, committed_database_url: str) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        tmp_path, committed_database_url, interactions=InteractionSettings(background=True)
    )
    async with serving(settings) as live_server:
        yield live_server
