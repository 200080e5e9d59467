"""The media store's contract, held by the local directory and by S3 (a real moto server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from stagecast.config import Settings
from stagecast.media.store import InvalidMediaKey, LocalMediaStore, MediaNotFound, MediaStore
from tests.media.conftest import BUCKET
from tests.media.conftest import open_s3_store as _s3_store


@pytest.fixture(params=["local", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: str
) -> AsyncIterator[MediaStore]:
    if request.param == "local":
        yield LocalMediaStore(tmp_path / "media")
        return
    s3 = await _s3_store(s3_endpoint, prefix=f"run/{tmp_path.name}/")
    try:
        yield s3
    finally:
        await s3.close()


async def test_objects_are_written_replaced_read_and_sized(store: MediaStore) -> None:
    await store.write("live/a/720p/seg_1.m4s", b"first")
    await store.write("live/a/720p/seg_1.m4s", b"second version")
    assert await store.read("live/a/720p/seg_1.m4s") == b"second version"
    assert await store.size("live/a/720p/seg_1.m4s") == len(b"second version")
    assert await store.exists("live/a/720p/seg_1.m4s")
    assert not await store.exists("live/a/720p/seg_2.m4s")
    await store.write("empty.txt", b"")
    assert await store.read("empty.txt") == b""
    assert await store.size("empty.txt") == 0


async def test_ranges_read_as_a_file_reads(store: MediaStore) -> None:
    await store.write("clip.mp4", b"0123456789")
    assert await store.read_range("clip.mp4", 2, 5) == b"234"
    assert await store.read_range("clip.mp4", 7) == b"789"
    assert await store.read_range("clip.mp4", 8, 100) == b"89"
    assert await store.read_range("clip.mp4", 10) == b""
    assert await store.read_range("clip.mp4", 50, 60) == b""
    assert await store.read_range("clip.mp4", 3, 3) == b""
    with pytest.raises(ValueError, match="invalid range"):
        await store.read_range("clip.mp4", 5, 2)


async def test_absent_objects_and_unsafe_keys_are_refused(store: MediaStore) -> None:
    for call in (store.read("gone.m4s"), store.size("gone.m4s"), store.read_range("gone", 0, 0)):
        with pytest.raises(MediaNotFound):
            await call
    await store.delete("gone.m4s")  # deleting what is not there is not an error
    for key in ("", "/abs", "a/../b", "a//b", ".hidden", "a/b c"):
        with pytest.raises(InvalidMediaKey):
            await store.write(key, b"x")
        with pytest.raises(InvalidMediaKey):
            await store.read(key)


async def test_listing_and_deleting_by_prefix(store: MediaStore) -> None:
    keys = ["live/s/720p/seg_1.m4s", "live/s/720p/seg_10.m4s", "live/s/480p/seg_1.m4s"]
    for key in [*keys, "live/t/720p/seg_1.m4s", "other.txt"]:
        await store.write(key, key.encode())
    assert await store.list_keys("live/s/") == sorted(keys)
    # A prefix is a string prefix, as S3 means it, not a directory.
    assert await store.list_keys("live/s/720p/seg_1") == keys[:2]
    assert await store.list_keys("nothing/") == []
    assert len(await store.list_keys()) == 5
    assert await store.delete_prefix("live/s/") == 3
    assert await store.list_keys("live/") == ["live/t/720p/seg_1.m4s"]
    await store.delete("other.txt")
    assert await store.list_keys() == ["live/t/720p/seg_1.m4s"]


async def test_s3_stores_with_other_prefixes_share_a_bucket_apart(s3_endpoint: str) -> None:
    one, two = await _s3_store(s3_endpoint, "node-one"), await _s3_store(s3_endpoint, "two/")
    try:
        await one.write("live/x/seg_1.m4s", b"one")
        await two.write("live/x/seg_1.m4s", b"two")
        assert await one.read("live/x/seg_1.m4s") == b"one"
        assert await one.list_keys() == ["live/x/seg_1.m4s"]
        assert await two.delete_prefix("") == 1
        assert await one.read("live/x/seg_1.m4s") == b"one"
        raw = await one.client.list_objects_v2(Bucket=BUCKET, Prefix="node-one/")
        assert [item["Key"] for item in raw["Contents"]] == ["node-one/live/x/seg_1.m4s"]
    finally:
        await asyncio.gather(one.close(), two.close())


async def test_more_objects_than_one_s3_page_list_and_delete(s3_endpoint: str) -> None:
    store = await _s3_store(s3_endpoint, "paged")
    try:
        keys = [f"v/seg_{n:04d}.m4s" for n in range(1105)]  # S3 pages hold 1,000 keys
        await asyncio.gather(*(store.write(key, b"x") for key in keys))
        assert await store.list_keys("v/") == keys
        assert await store.delete_prefix("v/") == len(keys)
        assert await store.list_keys("v/") == []
    finally:
        await store.close()


async def test_a_presigned_url_reads_the_object_without_credentials(s3_endpoint: str) -> None:
    store = await _s3_store(s3_endpoint, "signed")
    try:
        await store.write("live/y/seg_3.m4s", b"segment bytes")
        url = await store.presigned_url("live/y/seg_3.m4s", expires_seconds=60)
        assert "X-Amz-Signature=" in url
        async with httpx.AsyncClient() as http:
            assert (await http.get(url)).content == b"segment bytes"
        # moto checks no signatures unless IAM is set up, so what is checked here is the form:
        # SigV4 (the only one newer regions take) and the expiry asked for.
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
        assert "X-Amz-Expires=60" in url
    finally:
        await store.close()


def test_the_s3_store_needs_a_bucket_and_reads_its_operator_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGECAST_MEDIA_STORE", "s3")
    with pytest.raises(ValidationError, match="STAGECAST_S3_BUCKET"):
        Settings(data_dir=tmp_path)
    names = {
        "STAGECAST_S3_BUCKET": "media-bucket",
        "STAGECAST_S3_PREFIX": "site-a",
        "STAGECAST_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "STAGECAST_S3_REGION": "eu-west-3",
        "STAGECAST_S3_ACCESS_KEY_ID": "key",
        "STAGECAST_S3_SECRET_ACCESS_KEY": "secret",
        "STAGECAST_S3_PLAYBACK": "redirect",
        "STAGECAST_S3_PUBLIC_URL": "https://cdn.example.com",
        "STAGECAST_S3_PRESIGN_SECONDS": "600",
    }
    for name, value in names.items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path)
    assert settings.media.store == "s3"
    assert settings.s3.model_dump() == {
        "bucket": "media-bucket",
        "prefix": "site-a",
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-3",
        "access_key_id": "key",
        "secret_access_key": "secret",
        "playback": "redirect",
        "public_url": "https://cdn.example.com",
        "presign_seconds": 600,
    }
