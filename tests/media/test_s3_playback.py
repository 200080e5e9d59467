"""Playback from an S3 media store: served by the app, or redirected to the bucket or a CDN."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from stagecast.config import S3Settings, Settings
from stagecast.media.pipeline import media_prefix
from tests.conftest import make_settings
from tests.media.conftest import BUCKET, CREDENTIALS, open_s3_store
from tests.realtime.conftest import serving


async def _s3_settings(
    tmp_path: Path, database_url: str, s3_endpoint: str, **s3: object
) -> Settings:
    """Settings for an app on moto's bucket (this test's prefix), the bucket made."""
    await (await open_s3_store(s3_endpoint, "")).close()  # the bucket exists
    settings = make_settings(
        tmp_path,
        database_url,
        s3=S3Settings(
            bucket=BUCKET, prefix=f"play/{tmp_path.name}", endpoint_url=s3_endpoint,
            region="us-east-1", **CREDENTIALS, **s3,
        ),
    )  # fmt: skip
    settings.media.store = "s3"
    return settings


@pytest.mark.parametrize("playback", ["proxy", "redirect", "cdn"])
async def test_segments_come_from_the_app_the_bucket_or_the_cdn(
    tmp_path: Path, committed_database_url: str, s3_endpoint: str, playback: str
) -> None:
    options: dict[str, object] = {}
    if playback != "proxy":
        options["playback"] = "redirect"
    if playback == "cdn":
        options["public_url"] = "https://cdn.example.com/media/"
    settings = await _s3_settings(tmp_path, committed_database_url, s3_endpoint, **options)
    stream_id = uuid.uuid4()
    base = f"/hls/{stream_id}/source"
    async with serving(settings) as live:
        store = live.app.state.runtime.media.store
        prefix = f"{media_prefix(stream_id)}/source"
        await store.write(f"{prefix}/seg_1.m4s", b"segment one")
        await store.write(f"{prefix}/vod.m3u8", b"#EXTM3U\n")

        playlist = await live.http.get(f"{base}/vod.m3u8")
        assert playlist.status_code == 200  # playlists always from the app
        assert playlist.text == "#EXTM3U\n"
        segment = await live.http.get(f"{base}/seg_1.m4s")
        missing = await live.http.get(f"{base}/seg_9.m4s")
        if playback == "proxy":
            assert segment.status_code == 200
            assert segment.content == b"segment one"
            assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            return
        assert segment.status_code == 302
        assert segment.headers["cache-control"] == "public, max-age=60"
        location = segment.headers["location"]
        object_key = f"play/{tmp_path.name}/{prefix}/seg_1.m4s"
        if playback == "cdn":
            assert location == f"https://cdn.example.com/media/{object_key}"
            return
        assert location.startswith(f"{s3_endpoint}/{BUCKET}/{object_key}?")
        assert "X-Amz-Expires=3600" in location
        async with httpx.AsyncClient() as anonymous:  # no credentials: the URL is enough
            fetched = await anonymous.get(location, headers={"Range": "bytes=8-"})
        assert fetched.status_code == 206
        assert fetched.content == b"one"


async def test_deep_health_checks_the_bucket(
    tmp_path: Path, committed_database_url: str, s3_endpoint: str
) -> None:
    settings = await _s3_settings(tmp_path, committed_database_url, s3_endpoint)
    async with serving(settings) as live:
        health = (await live.http.get("/api/v1/health/deep")).json()
        assert health["config"]["media_store"] == "s3"
        assert health["checks"]["media_store"]["status"] == "ok"
        assert health["checks"]["media_store"]["details"]["bucket"] == BUCKET
    settings.s3.bucket = "no-such-bucket"
    async with serving(settings) as live:
        answer = await live.http.get("/api/v1/health/deep")
        assert answer.status_code == 503
        assert answer.json()["status"] == "unhealthy"
        assert answer.json()["checks"]["media_store"]["status"] == "down"
