"""Recordings' background work: seek previews of new VODs, and retention.

Runs in-process every `STAGECAST_VODS_JOBS_INTERVAL_SECONDS` on every node. Media work
(ffmpeg, the store) happens outside database transactions; a recording deleted meanwhile
loses the previews drawn for it. Retention deletes each expired recording in its own
transaction (the media hooks first: clips keep their media), then its files.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import structlog

from stagecast.db.base import utcnow
from stagecast.media import previews
from stagecast.media.packager import VOD_PLAYLIST_NAME
from stagecast.media.service import media_of
from stagecast.runtime import Runtime
from stagecast.vods import service as vods
from stagecast.vods.models import Vod

log = structlog.get_logger(__name__)

# New recordings get their previews from the job; older ones when someone asks.
NEW_VOD_WINDOW = timedelta(days=1)
# Retention counts in days: looking through the recordings once an hour is soon enough.
RETENTION_EVERY = timedelta(hours=1)


async def run_once(
    runtime: Runtime, *, now: datetime | None = None, retention: bool = True
) -> None:
    """One pass: previews of new recordings, then retention (`now`: tests move it)."""
    now = now or utcnow()
    async with runtime.db.read_session() as session, session.begin():
        waiting = await vods.needing_previews(session, since=now - NEW_VOD_WINDOW)
    for vod_id in waiting:
        await make_previews(runtime, vod_id)
    if retention:
        await apply_retention(runtime, now=now)


async def apply_retention(runtime: Runtime, *, now: datetime) -> None:
    """Delete the recordings older than their channel's retention."""
    async with runtime.db.read_session() as session, session.begin():
        expired = await vods.expired_vods(
            session, default_days=runtime.settings.vods.retention_days, now=now
        )
    for vod_id in expired:
        try:
            await delete_vod(runtime, vod_id)
        except Exception:
            log.exception("vod_retention_failed", vod_id=str(vod_id))
        else:
            log.info("vod_expired", vod_id=str(vod_id))


async def run_forever(runtime: Runtime) -> None:
    last_retention: datetime | None = None
    while True:
        await asyncio.sleep(runtime.settings.vods.jobs_interval_seconds)
        now = utcnow()
        due = last_retention is None or now - last_retention >= RETENTION_EVERY
        try:
            await run_once(runtime, now=now, retention=due)
        except Exception:
            log.exception("vod_jobs_failed")
        if due:
            last_retention = now


async def delete_vod(runtime: Runtime, vod_id: uuid.UUID) -> bool:
    """Delete a recording and its media (the hooks first); False if it was gone."""
    store = media_of(runtime).store
    async with runtime.db.session() as session, session.begin():
        vod = await session.get(Vod, vod_id)
        if vod is None:
            return False
        prefix = await vods.remove_vod(
            session, vod=vod, store=store, hooks=runtime.before_vod_media_withdrawn
        )
    await vods.remove_media(store, prefix)
    return True


async def make_previews(runtime: Runtime, vod_id: uuid.UUID) -> bool:
    """Draw a recording's seek previews and record them; False when they could not be made
    (remembered: the job does not try again, a request for them does)."""
    media = media_of(runtime)
    settings = runtime.settings.vods
    async with runtime.db.read_session() as session, session.begin():
        vod = await session.get(Vod, vod_id)
        if vod is None:
            return False
        prefix = vod.playlist_key.rpartition("/")[0]
        duration = vod.duration_seconds
        # The smallest rendition is the cheapest to decode; the thumbnails are small anyway.
        rendition = vod.renditions[-1] if vod.renditions else "none"
    layout = previews.preview_layout(
        duration,
        every=settings.preview_seconds,
        max_count=settings.max_previews,
        width=settings.preview_width,
    )
    track_key = f"{prefix}/previews/{previews.TRACK}"
    try:
        sprite = await previews.render_sprite(
            media.ffmpeg, media.store, f"{prefix}/{rendition}/{VOD_PLAYLIST_NAME}", layout
        )
        await media.store.write(f"{prefix}/previews/{previews.SPRITE}", sprite)
        await media.store.write(track_key, previews.webvtt(layout, duration).encode())
    except Exception as error:
        log.warning("vod_previews_failed", vod_id=str(vod_id), error=str(error)[:300])
        async with runtime.db.session() as session, session.begin():
            vod = await session.get(Vod, vod_id)
            if vod is not None:
                vod.previews_failed_at = utcnow()
        return False
    async with runtime.db.session() as session, session.begin():
        vod = await session.get(Vod, vod_id)
        if vod is not None:
            vod.previews_key = track_key
            vod.previews_failed_at = None
    if vod is None:  # deleted while drawing: nothing plays these
        await media.store.delete_prefix(f"{prefix}/previews/")
        return False
    log.info("vod_previews_made", vod_id=str(vod_id), thumbnails=layout.count)
    return True
