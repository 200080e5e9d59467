"""A stop never hangs: a shutdown step that does not finish is left behind, the rest run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from stagecast import app as app_module
from stagecast.app import create_app
from tests.conftest import make_settings


async def test_a_stuck_shutdown_step_is_left_behind_and_the_rest_run(
    tmp_path: Path, committed_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "SHUTDOWN_STEP_SECONDS", 0.5)
    application = create_app(make_settings(tmp_path, committed_database_url))
    runtime = application.state.runtime
    stuck = asyncio.Event()

    async def never_returns() -> None:
        stuck.set()
        await asyncio.Event().wait()

    async def failing() -> None:
        raise RuntimeError("a step that breaks")

    later: list[str] = []
    cluster_stop = runtime.cluster.stop

    async def cluster_stops() -> None:
        later.append("cluster")
        await cluster_stop()

    async with LifespanManager(application, shutdown_timeout=30):
        assert runtime.pulse is not None
        monkeypatch.setattr(runtime.pulse, "stop", never_returns)
        monkeypatch.setattr(runtime.media, "stop", failing)
        monkeypatch.setattr(runtime.cluster, "stop", cluster_stops)
        began = time.monotonic()
    assert stuck.is_set()
    assert later == ["cluster"]  # steps after the stuck and the failing one still ran
    assert time.monotonic() - began < 10
