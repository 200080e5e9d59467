"""Close what a crashed pipeline left in the media store, from the segments it stored.

A node killed mid-stream leaves each rendition's segments, its init segments and a live
playlist that names a part that will never exist. Recovery reads every stored segment back
(their fragments give exact durations), keeps the dates and discontinuities the last live
playlist still lists, and writes what `Packager.finish()` would have: the live playlist ended,
the VOD playlist, the master naming the VOD playlists, part files gone. Nothing stored is
rewritten: segments and init segments stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from stagecast.media.fmp4 import FragmentedMP4Parser, InitSegment, MediaFormatError
from stagecast.media.packager import PLAYLIST_NAME, VOD_PLAYLIST_NAME, RecordingSummary
from stagecast.media.pipeline import MASTER_PLAYLIST
from stagecast.media.playlists import (
    ListedSegment,
    MediaPlaylist,
    PlaylistSegment,
    read_listed_segments,
    render_media_playlist,
    target_duration_for,
)
from stagecast.media.store import MediaNotFound, MediaStore

log = structlog.get_logger(__name__)

_SEGMENT = re.compile(r"seg_(\d+)\.m4s")
_INIT = re.compile(r"init(?:_(\d+))?\.mp4")
_PART = re.compile(r"part_(\d+)_(\d+)\.m4s")
# As the packager: a jump in media time larger than this is a discontinuity.
_MAX_TIMESTAMP_JUMP = 0.5


@dataclass(frozen=True, slots=True)
class RecoveredStream:
    """What recovery left: each rendition's recording and when the media ends."""

    renditions: dict[str, RecordingSummary]
    ended_at: datetime | None  # the end of the last stored segment, None if nothing was


@dataclass(frozen=True, slots=True)
class _Read:
    """One stored segment read back."""

    number: int
    uri: str
    map_uri: str
    duration: float
    size: int
    start: float  # media time of its first fragment, in seconds
    end: float


async def close_stored_stream(
    store: MediaStore, prefix: str, *, started_at: datetime, keep_recording: bool
) -> RecoveredStream:
    """End the playlists of a stream whose pipeline is gone; return its recordings."""
    files: dict[str, list[str]] = {}
    for key in await store.list_keys(f"{prefix}/"):
        rendition, _, name = key.removeprefix(f"{prefix}/").partition("/")
        if name and "/" not in name:
            files.setdefault(rendition, []).append(name)
    summaries: dict[str, RecordingSummary] = {}
    ends: list[datetime] = []
    for rendition, names in sorted(files.items()):
        closed = await _close_rendition(
            store, f"{prefix}/{rendition}", names, started_at=started_at, keep=keep_recording
        )
        if closed is not None:
            summary, ended_at = closed
            summaries[rendition] = summary
            ends.append(ended_at)
    recorded = [name for name, s in summaries.items() if s.vod_playlist_key]
    if recorded:
        await _point_master_at_vods(store, prefix, recorded)
    return RecoveredStream(renditions=summaries, ended_at=max(ends, default=None))


async def _close_rendition(
    store: MediaStore, prefix: str, names: list[str], *, started_at: datetime, keep: bool
) -> tuple[RecordingSummary, datetime] | None:
    inits = {int(found.group(1) or 0): name for name in names if (found := _INIT.fullmatch(name))}
    numbers = sorted(int(found.group(1)) for n in names if (found := _SEGMENT.fullmatch(n)))
    if (salvaged := await _store_open_segment(store, prefix, names, numbers)) is not None:
        numbers.append(salvaged)
    if not inits or not numbers:
        return None
    listed, discontinuity_sequence = await _listed(store, f"{prefix}/{PLAYLIST_NAME}")
    read = await _read_segments(store, prefix, numbers, inits)
    segments, ended_at = _timeline(read, listed, started_at=started_at)
    if not segments:
        return None
    target = target_duration_for(segment.duration for segment in segments)
    live = MediaPlaylist(
        segments=tuple(segments),
        target_duration=target,
        media_sequence=read[0].number,
        discontinuity_sequence=discontinuity_sequence,
        ended=True,
    )
    await store.write(f"{prefix}/{PLAYLIST_NAME}", render_media_playlist(live).encode())
    vod_key = None
    if keep:
        vod = MediaPlaylist(
            segments=tuple(segments), target_duration=target, playlist_type="VOD", ended=True
        )
        vod_key = f"{prefix}/{VOD_PLAYLIST_NAME}"
        await store.write(vod_key, render_media_playlist(vod).encode())
    for name in names:
        if _PART.fullmatch(name):
            await store.delete(f"{prefix}/{name}")
    summary = RecordingSummary(
        segment_count=len(segments),
        duration=sum(segment.duration for segment in segments),
        size=sum(r.size for r in read),
        vod_playlist_key=vod_key,
    )
    return summary, ended_at


async def _store_open_segment(
    store: MediaStore, prefix: str, names: list[str], numbers: list[int]
) -> int | None:
    """The segment being cut when the pipeline died lives on in its parts (viewers already
    played them): join them into that segment, as the packager's next cut would have."""
    open_number = numbers[-1] + 1 if numbers else 0
    indices = {
        int(found.group(2))
        for name in names
        if (found := _PART.fullmatch(name)) and int(found.group(1)) == open_number
    }
    count = 0
    while count in indices:
        count += 1
    if not count:
        return None
    parts = [await store.read(f"{prefix}/part_{open_number}_{i}.m4s") for i in range(count)]
    await store.write(f"{prefix}/seg_{open_number}.m4s", b"".join(parts))
    return open_number


async def _listed(store: MediaStore, key: str) -> tuple[dict[str, ListedSegment], int]:
    try:
        text = (await store.read(key)).decode(errors="replace")
    except MediaNotFound:
        return {}, 0
    return read_listed_segments(text)


async def _read_segments(
    store: MediaStore, prefix: str, numbers: list[int], inits: dict[int, str]
) -> list[_Read]:
    """Every segment that parses, with its timing; one that does not is left out."""
    parsed_inits: dict[str, bytes] = {}
    read: list[_Read] = []
    for number in numbers:
        map_uri = inits[max((k for k in inits if k <= number), default=min(inits))]
        if map_uri not in parsed_inits:
            parsed_inits[map_uri] = await store.read(f"{prefix}/{map_uri}")
        uri = f"seg_{number}.m4s"
        data = await store.read(f"{prefix}/{uri}")
        try:
            timing = _fragments_timing(parsed_inits[map_uri], data)
        except MediaFormatError as error:
            log.warning("recovery_segment_unreadable", key=f"{prefix}/{uri}", error=str(error))
            continue
        if timing is None:
            continue
        start, end = timing
        read.append(_Read(number, uri, map_uri, end - start, len(data), start, end))
    return read


def _fragments_timing(init: bytes, segment: bytes) -> tuple[float, float] | None:
    """(start, end) in media seconds of the fragments a stored segment holds."""
    parser = FragmentedMP4Parser()
    items = parser.feed(init + segment)
    parser.close()
    fragments = [item for item in items if not isinstance(item, InitSegment)]
    if not fragments:
        return None
    first, last = fragments[0], fragments[-1]
    return first.start_seconds, last.start_seconds + last.duration_seconds


def _timeline(
    read: list[_Read], listed: dict[str, ListedSegment], *, started_at: datetime
) -> tuple[list[PlaylistSegment], datetime]:
    """Date every segment: as the live playlist said where it still lists it, else from the
    segment before; a new init, a gap in numbers or a jump in media time is a discontinuity.
    Returns the segments and when the last one ends."""
    segments: list[PlaylistSegment] = []
    previous: _Read | None = None
    end = started_at
    for item in read:
        said = listed.get(item.uri)
        breaks = previous is not None and (
            item.map_uri != previous.map_uri
            or item.number != previous.number + 1
            or abs(item.start - previous.end) > _MAX_TIMESTAMP_JUMP
        )
        stamp = end  # where the segment before ended (the start, for the first)
        if said is not None and said.program_date_time is not None:
            stamp = said.program_date_time
        segments.append(
            PlaylistSegment(
                uri=item.uri,
                duration=item.duration,
                map_uri=item.map_uri,
                program_date_time=stamp,
                discontinuity=bool(segments) and (breaks or bool(said and said.discontinuity)),
            )
        )
        previous = item
        end = stamp + timedelta(seconds=item.duration)
    return segments, end


async def _point_master_at_vods(store: MediaStore, prefix: str, recorded: list[str]) -> None:
    key = f"{prefix}/{MASTER_PLAYLIST}"
    try:
        text = (await store.read(key)).decode()
    except MediaNotFound:
        return
    for rendition in recorded:
        text = text.replace(f"{rendition}/{PLAYLIST_NAME}", f"{rendition}/{VOD_PLAYLIST_NAME}")
    await store.write(key, text.encode())
