"""The Host header is not trusted: addresses come from settings, and in production (or when
configured) a request naming another host is refused in the one error format."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stagecast.db.engine import Database
from stagecast.middleware import host_allowed
from tests.conftest import make_settings
from tests.factories import register
from tests.test_health import serve

EVIL = {"Host": "evil.example"}


async def test_in_production_only_the_public_host_is_answered(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path, database_url, environment="production", public_url="https://live.example.com"
    )
    async with serve(settings, database) as (_, http):
        refused = await http.get("/api/v1/health", headers=EVIL)
        redirect = await http.get("/api/v1/health/", headers=EVIL)
        fine = await http.get("/api/v1/health", headers={"Host": "live.example.com"})
        with_port = await http.get("/api/v1/health", headers={"Host": "LIVE.example.com:443"})
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "HOST_NOT_ALLOWED"
    assert redirect.status_code == 400  # never a Location on evil.example
    assert fine.status_code == 200
    assert with_port.status_code == 200


async def test_addresses_handed_out_come_from_settings_not_the_host(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, public_url="https://live.example.com")
    async with serve(settings, database) as (_, http):
        account = await register(http)
        key = await http.get("/api/v1/live/streams/me/key", headers={**account.headers, **EVIL})
        assert key.status_code == 200, key.text
        assert "evil.example" not in key.text
        assert key.json()["rtmp_server"].startswith("rtmp://live.example.com:")


async def test_configured_hosts_are_enforced_in_development_too(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, allowed_hosts=["testserver", "*.cdn.test"])
    async with serve(settings, database) as (_, http):
        assert (await http.get("/api/v1/health", headers=EVIL)).status_code == 400
        assert (await http.get("/api/v1/health")).status_code == 200
        cdn = await http.get("/api/v1/health", headers={"Host": "edge1.cdn.test"})
        assert cdn.status_code == 200


def test_production_needs_an_absolute_public_url(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        make_settings(tmp_path, database_url, environment="production")
    with pytest.raises(ValidationError, match="public_url"):
        make_settings(tmp_path, database_url, public_url="live.example.com")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("live.example.com", True),
        ("live.example.com:8443", True),
        ("LIVE.EXAMPLE.COM.", True),
        ("a.cdn.test", True),
        ("cdn.test", False),
        ("evil.example", False),
        ("live.example.com.evil.example", False),
        ("[::1]:8080", True),
        ("", False),
    ],
)
def test_host_matching(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["live.example.com", "*.cdn.test", "::1"]) is allowed
