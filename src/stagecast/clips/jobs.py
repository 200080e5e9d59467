"""Clips' background work: render the MP4 and thumbnail of new and trimmed clips.

In-process (DESIGN: background work runs in-process by default), one render at a time so that
a burst of clips cannot starve the live pipelines of CPU. A clip stays `pending` until its
render is stored; clips a stopped server left pending are taken up when it starts again. A
render of a version a trim has since replaced is thrown away. No transaction is open while
ffmpeg runs or the store is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import select

from stagecast.clips.models import Clip, Mp4State
from stagecast.clips.ranges import Segment
from stagecast.clips.render import (
    RenderFailed,
    SourceGroup,
    render_clip_media,
    source_groups,
)
from stagecast.clips.service import ClipMediaPlan, clip_prefix
from stagecast.errors import ServiceUnavailable
from stagecast.media.service import media_of
from stagecast.media.store import MediaNotFound, MediaStore
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RenderJob:
    plan: ClipMediaPlan
    version: int
    rendition: str
    segments: list[Segment]


class ClipRenderer:
    """The queue of clips whose MP4 is due, and the one worker that renders them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Before the worker and the first requests: on a test's shared connection nothing may
        # run beside them.
        await self._resume()
        self._worker = asyncio.create_task(self._run(), name="clip-renders")

    async def _resume(self) -> None:
        """Queue the renders a stopped server left pending. A database it cannot read (its
        migrations pending: readiness says so) must not keep the app from starting."""
        try:
            async with self.runtime.db.read_session() as session, session.begin():
                pending = (
                    await session.scalars(
                        select(Clip.id).where(Clip.mp4_state == Mp4State.PENDING.value)
                    )
                ).all()
        except Exception as error:
            log.warning("clip_renders_resume_failed", error=type(error).__name__)
            return
        for clip_id in pending:
            self.submit(clip_id)

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def submit(self, clip_id: uuid.UUID) -> None:
        """Render the clip's current version (after the transaction that made it commits)."""
        self._queue.put_nowait(clip_id)

    async def idle(self) -> None:
        """Wait until every submitted render is done (tests, benchmarks)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            clip_id = await self._queue.get()
            try:
                await render_clip(self.runtime, clip_id)
            except Exception:
                log.exception("clip_render_failed", clip_id=str(clip_id))
            finally:
                self._queue.task_done()


async def _due_job(runtime: Runtime, clip_id: uuid.UUID) -> RenderJob | None:
    """The render a pending clip is due, from where its media lives now."""
    async with runtime.db.read_session() as session, session.begin():
        clip = await session.get(Clip, clip_id)
        if clip is None or clip.mp4_state != Mp4State.PENDING.value:
            return None
        plan = ClipMediaPlan.of(clip)
        version = clip.render_version
    rendition, segments = plan.renditions[0]
    return RenderJob(plan, version, rendition, plan.shown(segments))


async def render_clip(runtime: Runtime, clip_id: uuid.UUID) -> bool:
    """Render a pending clip's MP4 and thumbnail and record them; False if nothing was due."""
    job = await _due_job(runtime, clip_id)
    if job is None:
        return False
    version = job.version
    store = media_of(runtime).store
    work_dir = runtime.settings.data_dir / "work" / "clips" / f"{clip_id}-{version}"
    try:
        try:
            mp4_key, thumbnail_key, duration = await _render(runtime, store, job, work_dir)
        except MediaNotFound:
            # The VOD was deleted while its segments were read: its clips' media was copied
            # into their own folders first (detach_clips_of_stream), so read that copy.
            copied = await _due_job(runtime, clip_id)
            if job.plan.copied or copied is None or not copied.plan.copied:
                raise
            if copied.version != version:
                return True  # trimmed meanwhile: the newer version's render is queued
            log.info("clip_render_reads_its_copy", clip_id=str(clip_id))
            job = copied
            mp4_key, thumbnail_key, duration = await _render(runtime, store, job, work_dir)
    except (RenderFailed, MediaNotFound, ServiceUnavailable) as error:
        log.warning("clip_render_failed", clip_id=str(clip_id), error=str(error)[:500])
        async with runtime.db.session() as session, session.begin():
            clip = await session.get(Clip, clip_id)
            if clip is not None and clip.render_version == version:
                clip.mp4_state = Mp4State.FAILED.value
        return True
    finally:
        await asyncio.to_thread(shutil.rmtree, work_dir, True)
    replaced: list[str] = []
    async with runtime.db.session() as session, session.begin():
        clip = await session.get(Clip, clip_id)
        if clip is not None and clip.render_version == version:
            replaced = [k for k in (clip.mp4_key, clip.thumbnail_key) if k]
            clip.mp4_key, clip.thumbnail_key = mp4_key, thumbnail_key
            clip.mp4_duration = round(duration, 4)
            clip.mp4_state = Mp4State.READY.value
        else:
            replaced = [k for k in (mp4_key, thumbnail_key) if k]  # deleted or trimmed again
    for key in replaced:
        await store.delete(key)
    log.info("clip_rendered", clip_id=str(clip_id), version=version, seconds=duration)
    return True


async def _render(
    runtime: Runtime, store: MediaStore, job: RenderJob, work_dir: Path
) -> tuple[str, str | None, float]:
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    groups = []
    for group in source_groups(job.segments):
        init = await store.read(job.plan.source_key(job.rendition, group[0].map_uri))
        data = [await store.read(job.plan.source_key(job.rendition, s.uri)) for s in group]
        groups.append(SourceGroup(init, tuple(group), tuple(data)))
    rendered = await render_clip_media(
        media_of(runtime).ffmpeg,
        work_dir=work_dir,
        groups=groups,
        start=job.plan.start,
        end=job.plan.end,
    )
    log.info(
        "clip_render_done",
        clip_id=str(job.plan.clip_id),
        method=rendered.method,
        seconds=rendered.seconds,
        cpu_seconds=rendered.cpu_seconds,
    )
    prefix = clip_prefix(job.plan.clip_id)
    mp4_key = f"{prefix}/clip_v{job.version}.mp4"
    thumbnail_key: str | None = f"{prefix}/thumbnail_v{job.version}.jpg"
    await store.write(mp4_key, await asyncio.to_thread(rendered.mp4.read_bytes))
    if thumbnail_key and rendered.thumbnail.is_file():
        await store.write(thumbnail_key, await asyncio.to_thread(rendered.thumbnail.read_bytes))
    else:
        thumbnail_key = None
    return mp4_key, thumbnail_key, rendered.duration
