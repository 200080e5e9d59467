"""The official Socket.IO JS client (v4, run by node) against our server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.factories import go_live, make_channel
from tests.realtime.conftest import LiveServer

NODE_DIR = Path(__file__).parents[1] / "e2e" / "node"


async def test_js_client_joins_and_receives_a_message(live: LiveServer) -> None:
    node = shutil.which("node")
    assert node, "node is needed (the machine image ships it)"
    assert (NODE_DIR / "node_modules" / "socket.io-client").exists(), "run make test (npm ci)"
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    stream_id = await go_live(live.app, channel["slug"])

    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "join_and_listen.mjs"),
        live.url,
        "",
        stream_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[dict[str, object]] = []
    while not any(line["kind"] == "send_ack" for line in lines):
        raw = await asyncio.wait_for(process.stdout.readline(), 20)
        assert raw, (await process.stderr.read()).decode() if process.stderr else "no output"
        lines.append(json.loads(raw))
    joined = next(line["data"] for line in lines if line["kind"] == "joined")
    assert joined == {
        "ok": True,
        "channel_id": channel["id"],
        "stream_id": stream_id,
        "is_live": True,
        "viewer_count": 1,
    }
    refused = next(line["data"] for line in lines if line["kind"] == "send_ack")
    assert refused["ok"] is False  # type: ignore[index]
    assert refused["error"]["code"] == "AUTHENTICATION_REQUIRED"  # type: ignore[index]

    sender = await live.connect(owner)
    await sender.call("stream:join", {"streamId": stream_id})
    assert (await sender.call("chat:send", {"message": "hello node"}))["ok"]
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    received = [json.loads(line) for line in out.decode().splitlines()]
    message = next(line["data"] for line in received if line["kind"] == "chat:message")
    assert message["type"] == "chat:message"
    assert message["payload"]["body"] == "hello node"
    assert process.returncode == 0


async def _refused(live: LiveServer, token: str, auth: dict[str, object]) -> dict[str, object]:
    """What the official client's `connect_error` hands the app: `err.message`, `err.data`."""
    node = shutil.which("node")
    assert node, "node is needed (the machine image ships it)"
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "join_and_listen.mjs"),
        live.url,
        token,
        "00000000-0000-7000-8000-000000000000",
        json.dumps(auth),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 3, (out + err).decode()
    line = json.loads(out.decode().splitlines()[-1])
    assert line["kind"] == "connect_error"
    refusal: dict[str, object] = line["data"]
    return refusal


@pytest.mark.parametrize(
    ("token", "auth", "code"),
    [
        ("not-a-jwt", {}, "INVALID_TOKEN"),
        ("", {"dialect": "klingon"}, "VALIDATION_ERROR"),
    ],
)
async def test_a_refused_handshake_gives_the_js_client_the_problem(
    live: LiveServer, token: str, auth: dict[str, object], code: str
) -> None:
    refusal = await _refused(live, token, auth)
    message, problem = refusal["message"], refusal["data"]
    assert isinstance(message, str)
    assert isinstance(problem, dict)
    assert problem["code"] == code
    assert message == problem["detail"]  # a sentence for people, not a Python repr
    assert not message.startswith("{")
    assert set(problem) >= {"type", "title", "status", "detail", "code"}
