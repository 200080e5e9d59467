"""The media store on any S3-compatible service (AWS S3, MinIO, Ceph, R2…), through aiobotocore.

aiobotocore is botocore (the AWS SDK's own request signing, retries, addressing styles and
error parsing) on aiohttp, so every S3-compatible service that boto3 reaches works here, and
botocore's presigned URLs are what players are redirected to. Keys are the store's relative
keys under an optional prefix (`STAGECAST_S3_PREFIX`); a write is one PUT, which S3 makes
visible atomically, as the local store's rename does.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from stagecast.media.store import MediaNotFound, MediaStoreError, validate_key, validate_prefix

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DELETE_BATCH = 1000  # S3's limit for one DeleteObjects request


class S3MediaStore:
    """A media store over one bucket (and prefix); `open` before use, `close` after."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        redirect: bool = False,
        public_url: str | None = None,
        presign_seconds: int = 3600,
    ) -> None:
        self.bucket = bucket
        self.redirect = redirect
        self.public_url = public_url.rstrip("/") if public_url else None
        self.presign_seconds = presign_seconds
        self.prefix = validate_prefix(prefix.strip("/") + "/" if prefix.strip("/") else "")
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            # Path-style addressing works with every S3-compatible server (MinIO, Ceph, moto);
            # virtual-hosted style needs DNS per bucket. SigV4 for presigned URLs too (botocore
            # would presign with the legacy SigV2 in us-east-1, which newer regions refuse).
            "config": AioConfig(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        self._exit = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    async def open(self) -> None:
        session = get_session()
        self._client = await self._exit.enter_async_context(
            session.create_client("s3", **self._client_options)
        )

    async def close(self) -> None:
        self._client = None
        await self._exit.aclose()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("the S3 media store is opened by the app's lifespan")
        return self._client

    def object_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    async def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any previous object atomically."""
        await self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)

    async def read(self, key: str) -> bytes:
        """Return the whole object; raise `MediaNotFound` if absent."""
        return await self.read_range(key, 0)

    async def read_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Return bytes [start, end) of the object (to its end when `end` is None)."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range {start}-{end}")
        options: dict[str, Any] = {}
        if end == start:
            await self.size(key)  # an empty range of an absent object is still absent
            return b""
        if start or end is not None:
            options["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = await self.client.get_object(
                Bucket=self.bucket, Key=self.object_key(key), **options
            )
        except ClientError as error:
            code = _code(error)
            if code == "InvalidRange":  # start at or past the end: nothing, as a file reads
                return b""
            raise _translated(error, key) from error
        async with answer["Body"] as body:
            return await body.read()

    async def size(self, key: str) -> int:
        """Return the object's size in bytes; raise `MediaNotFound` if absent."""
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            raise _translated(error, key) from error
        return head["ContentLength"]

    async def exists(self, key: str) -> bool:
        """Tell whether an object is stored under `key`."""
        try:
            await self.size(key)
        except MediaNotFound:
            return False
        return True

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix`."""
        wanted = self.prefix + validate_prefix(prefix)
        keys: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=wanted
        )
        async for page in pages:
            keys.extend(item["Key"].removeprefix(self.prefix) for item in page.get("Contents", []))
        return sorted(keys)

    async def delete(self, key: str) -> None:
        """Remove the object if present."""
        await self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; return how many."""
        keys = await self.list_keys(prefix)
        for first in range(0, len(keys), _DELETE_BATCH):
            batch = keys[first : first + _DELETE_BATCH]
            answer = await self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.prefix + k} for k in batch], "Quiet": True},
            )
            if answer.get("Errors"):
                failed = answer["Errors"][0]
                raise MediaStoreError(f"S3 could not delete {failed.get('Key')!r}: {failed}")
        return len(keys)

    async def probe(self) -> None:
        """Raise unless the bucket answers and these credentials may use it (HeadBucket)."""
        await self.client.head_bucket(Bucket=self.bucket)

    async def playback_url(self, key: str) -> str | None:
        """With redirects on: the public (CDN) URL of the object, else a presigned one."""
        if not self.redirect:
            return None
        if self.public_url is not None:
            return f"{self.public_url}/{self.object_key(key)}"
        return await self.presigned_url(key, expires_seconds=self.presign_seconds)

    async def presigned_url(self, key: str, *, expires_seconds: int) -> str:
        """A URL any HTTP client may GET the object from until it expires (no credentials)."""
        return await self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=expires_seconds,
        )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translated(error: ClientError, key: str) -> MediaStoreError:
    if _code(error) in _NOT_FOUND:
        return MediaNotFound(key)
    return MediaStoreError(f"S3 refused {key!r}: {_code(error) or error}")
