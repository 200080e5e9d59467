"""Stored settings that no longer validate read as defaults: chat keeps working."""

from __future__ import annotations

import logging
import uuid

import pytest

from stagecast.channels.models import Channel
from stagecast.runtime import Runtime
from tests.conftest import logged
from tests.factories import make_channel
from tests.realtime.conftest import LiveServer


async def test_invalid_stored_settings_read_as_defaults_with_one_warning(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    http = live.http
    owner = await live.account()
    channel = await make_channel(http, owner)
    runtime: Runtime = live.app.state.runtime
    async with runtime.db.session() as session, session.begin():
        row = await session.get_one(Channel, uuid.UUID(channel["id"]))
        # What an older release could store: a null, a wrong type, a bad list entry.
        row.settings = {
            "chat": {"slow_mode_seconds": None, "blocked_terms": [5, "ok", ["x"]]},
            "reconnect_window_seconds": "soon",
            "recording_enabled": False,
        }
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            answer = await http.get(
                f"/api/v1/channels/{channel['id']}/settings", headers=owner.headers
            )
            assert answer.status_code == 200, answer.text
    settings = answer.json()
    assert settings["chat"]["slow_mode_seconds"] == 0
    assert settings["reconnect_window_seconds"] == 30
    assert settings["recording_enabled"] is False  # what was valid is kept
    assert settings["chat"]["blocked_terms"] == ["ok"]
    warnings = logged(caplog, "stored_settings_invalid")
    assert len(warnings) == 1, caplog.records

    # Chat (which reads the settings on every send) works for the channel.
    chatter = await live.account()
    socket = await live.connect(chatter)
    joined = await socket.call("stream:join", {"channelId": channel["id"]})
    assert joined["ok"], joined
    sent = await socket.call("chat:send", {"channelId": channel["id"], "message": "still here"})
    assert sent["ok"], sent
