"""Recordings: written when a recorded stream ends, listed per channel."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.channels.models import Channel
from stagecast.errors import NotFound
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate
from stagecast.streams.models import Stream
from stagecast.vods.models import Vod
from stagecast.vods.schemas import VodOut


async def record_vod(
    session: AsyncSession,
    *,
    stream: Stream,
    duration_seconds: float,
    size_bytes: int,
    playlist_key: str,
    thumbnail_key: str | None,
    renditions: list[str],
) -> Vod:
    """The recording of an ended stream (one per stream: a second call updates it)."""
    vod = await session.scalar(select(Vod).where(Vod.stream_id == stream.id))
    if vod is None:
        vod = Vod(stream_id=stream.id, channel_id=stream.channel_id)
        session.add(vod)
    vod.title = stream.title
    vod.duration_seconds = round(duration_seconds, 3)
    vod.size_bytes = size_bytes
    vod.playlist_key = playlist_key
    vod.thumbnail_key = thumbnail_key
    vod.renditions = renditions
    await session.flush()
    return vod


async def get_vod(session: AsyncSession, vod_id: uuid.UUID) -> Vod:
    vod = await session.get(Vod, vod_id)
    if vod is None:
        raise NotFound("Recording not found")
    return vod


async def list_channel_vods(
    session: AsyncSession, *, channel: Channel, params: PageParams
) -> tuple[list[Vod], PageInfo]:
    """A channel's recordings, newest first."""
    query = select(Vod).where(Vod.channel_id == channel.id)
    return await paginate(session, query, keys=[SortKey(Vod.id, lambda v: v.id)], params=params)


def present_vod(vod: Vod) -> VodOut:
    return VodOut(
        id=vod.id,
        stream_id=vod.stream_id,
        channel_id=vod.channel_id,
        title=vod.title,
        duration_seconds=vod.duration_seconds,
        size_bytes=vod.size_bytes,
        renditions=list(vod.renditions),
        playlist_url=f"/hls/{vod.stream_id}/master.m3u8",
        thumbnail_url=f"/hls/{vod.stream_id}/thumbnail.jpg" if vod.thumbnail_key else None,
        created_at=vod.created_at,
    )
