"""Clips of a live 720p stream: POST /clips to a playable HLS clip and to its MP4 (issue 15).

What it does
    Starts `stagecast serve` (temporary data dir, SQLite, RTMP on a free port, the ladder off
    by default so that the source passes through and the two cores stay for the clips), and
    publishes ffmpeg's test pattern at 1280x720, 30 fps (x264 veryfast, a keyframe a second,
    2.5 Mb/s, AAC) over RTMP in real time. Once 30 s are recorded, a viewer clips the last
    30 s every `--every` seconds, `--clips` times. For each clip:

    - HLS: from sending the POST to having fetched the master playlist, the media playlist,
      its init segment and its first segment (what a player needs to show the first frame);
    - MP4: from sending the POST to `GET /clips/{id}` answering `mp4_state: ready`;
    - duration: the MP4's video frames (ffmpeg reads them without decoding) against the
      request's 30 s at 30 fps, in frames.

    Clips are asked `--offset` seconds behind the live edge (default 2.5: where a player
    watching with HLS latency is), so that both ends fall inside a GOP, as they do for people.

    After the clips, in the same run on the same machine, alone (less sensitive to the load of
    a shared machine than the times above): the floor, `ffmpeg -c copy` of the same segments
    (init + segments joined) into an MP4; and the render job's two ways on the same segments
    and range, timed and with their ffmpeg CPU seconds (user + system of the children): the
    splice (copied segments, re-encoded edge GOPs) and the whole clip re-encoded (the fallback).

    The live stream's latency: every 0.5 s, now minus the live edge the live playlist
    announces (the last EXT-X-PROGRAM-DATE-TIME plus the segments and parts after it), over
    the 20 s before clipping starts and while the clips are made and rendered. The program
    date-time is the ingest's clock, so this is how far the packager's output trails what
    the publisher sends; if renders starved the pipeline of CPU it would rise.

Run: `.venv/bin/python bench/clips.py [--clips 8] [--every 5] [--ladder '[]']`; prints a table
and writes bench/results/clips.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import kit
from serving import clean_env, free_port, launched, stagecast_command

from stagecast.clips.ranges import read_media_playlist
from stagecast.clips.render import SourceGroup, render_reencoded, render_spliced

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FRAME_RATE = 30
CLIP_SECONDS = 30.0


@dataclass
class ClipTiming:
    clip_id: str
    hls_seconds: float
    mp4_seconds: float | None = None
    frames: int | None = None
    copy_seconds: float | None = None
    splice_seconds: float | None = None
    splice_cpu: float | None = None
    reencode_seconds: float | None = None
    reencode_cpu: float | None = None


@dataclass
class Run:
    clips: list[ClipTiming] = field(default_factory=list)
    latency_before: list[float] = field(default_factory=list)
    latency_during: list[float] = field(default_factory=list)


def live_edge(playlist: str) -> datetime | None:
    """The wall-clock time the last media listed in a live playlist ends at."""
    lines = playlist.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
    if not marks:
        return None
    start = datetime.fromisoformat(lines[marks[-1]].partition(":")[2])
    whole, partial = 0.0, 0.0
    for line in lines[marks[-1] + 1 :]:
        if line.startswith("#EXTINF:"):
            whole += float(line.removeprefix("#EXTINF:").partition(",")[0])
            partial = 0.0
        elif line.startswith("#EXT-X-PART:"):
            found = re.search(r"DURATION=([\d.]+)", line)
            partial += float(found.group(1)) if found else 0.0
    return datetime.fromtimestamp(start.timestamp() + whole + partial, tz=start.tzinfo)


async def sample_latency(
    http: httpx.AsyncClient, stream_id: str, into: list[float], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        answer = await http.get(f"/hls/{stream_id}/source/index.m3u8")
        edge = live_edge(answer.text) if answer.status_code == 200 else None
        if edge is not None:
            into.append(time.time() - edge.timestamp())
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def fetch_playable(http: httpx.AsyncClient, playlist_url: str) -> tuple[list[str], str]:
    """Fetch what a player needs for the first frame; return the media playlist's URLs and
    the playlist."""
    master = await http.get(playlist_url)
    master.raise_for_status()
    variant = next(line for line in master.text.splitlines() if line.endswith(".m3u8"))
    base = playlist_url.rsplit("/", 1)[0]
    media = await http.get(f"{base}/{variant}")
    media.raise_for_status()
    folder = f"{base}/{variant}".rsplit("/", 1)[0]

    def absolute(uri: str) -> str:
        return uri if uri.startswith("/") else f"{folder}/{uri}"

    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', media.text)
    uris = [line for line in media.text.splitlines() if line and not line.startswith("#")]
    if init is None or not uris:
        raise RuntimeError(f"an unplayable clip playlist:\n{media.text}")
    for url in (absolute(init.group(1)), absolute(uris[0])):
        (await http.get(url)).raise_for_status()
    return [absolute(init.group(1)), *[absolute(u) for u in uris]], media.text


async def make_clip(
    http: httpx.AsyncClient, headers: dict[str, str], stream_id: str, run: Run, offset: float
) -> tuple[ClipTiming, list[str], str]:
    began = time.perf_counter()
    answer = await http.post(
        "/api/v1/clips",
        json={"stream_id": stream_id, "duration": CLIP_SECONDS, "offset": offset},
        headers=headers,
    )
    answer.raise_for_status()
    clip = answer.json()
    urls, playlist = await fetch_playable(http, clip["playlist_url"])
    timing = ClipTiming(clip["id"], hls_seconds=time.perf_counter() - began)
    while True:
        state = (await http.get(f"/api/v1/clips/{clip['id']}")).json()
        if state["mp4_state"] != "pending":
            break
        await asyncio.sleep(0.05)
    if state["mp4_state"] == "ready":
        timing.mp4_seconds = time.perf_counter() - began
        data = (await http.get(state["mp4_url"])).content
        timing.frames = await asyncio.to_thread(count_frames, data)
    run.clips.append(timing)
    return timing, urls, playlist


def count_frames(data: bytes) -> int:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as file:
        file.write(data)
        file.flush()
        done = subprocess.run(  # noqa: S603 - our own fixed command line
            [FFMPEG, "-hide_banner", "-nostdin", "-i", file.name, "-map", "0:v:0",
             "-c", "copy", "-f", "null", "-"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    frames = re.findall(r"frame=\s*(\d+)", done.stderr)
    return int(frames[-1]) if frames else -1


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def render_alone(
    http: httpx.AsyncClient, urls: list[str], playlist: str, work: Path
) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """The floor (ffmpeg copying the clip's segments into an MP4, fetched beforehand), then
    the job's splice and its whole-clip re-encode of the same range, each alone:
    (copy seconds, (splice seconds, CPU), (re-encode seconds, CPU))."""
    parts = [(await http.get(url)).content for url in urls]
    source, target = work / "source.mp4", work / "copy.mp4"
    source.write_bytes(b"".join(parts))
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
        "-c", "copy", "-movflags", "+faststart", str(target),
    )  # fmt: skip
    await process.wait()
    copied = time.perf_counter() - began
    segments = read_media_playlist(playlist)
    found = re.search(r"TIME-OFFSET=([\d.]+)", playlist)
    start = float(found.group(1)) if found else 0.0
    group = SourceGroup(parts[0], tuple(segments), tuple(parts[1:]))
    timings = []
    for name, render in (("spliced", render_spliced), ("reencoded", render_reencoded)):
        folder = work / f"render-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        began, cpu = time.perf_counter(), children_cpu()
        await render(FFMPEG, work_dir=folder, groups=[group], start=start,
                     end=start + CLIP_SECONDS)  # fmt: skip
        timings.append((time.perf_counter() - began, children_cpu() - cpu))
    return copied, timings[0], timings[1]


async def publisher(rtmp_url: str, seconds: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={FRAME_RATE}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-g", str(FRAME_RATE), "-keyint_min", str(FRAME_RATE), "-sc_threshold", "0",
        "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-f", "flv", rtmp_url,
    )  # fmt: skip


async def measure(base_url: str, args: argparse.Namespace, work: Path) -> Run:
    run = Run()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        password = "Bench-" + secrets.token_urlsafe(16)
        tokens = []
        for name in ("benchcreator", "benchviewer"):
            body = {"username": name, "email": f"{name}@example.com", "password": password}
            answer = await http.post("/api/v1/auth/register", json=body)
            answer.raise_for_status()
            tokens.append({"Authorization": f"Bearer {answer.json()['access_token']}"})
        creator, viewer = tokens
        channel = (
            await http.post("/api/v1/channels", json={"slug": "clipbench"}, headers=creator)
        ).json()
        # The bench clips more often than the default per-user limit allows.
        await http.patch(
            f"/api/v1/channels/{channel['id']}/settings",
            json={"clips": {"per_user_per_hour": 1000}},
            headers=creator,
        )
        key = (await http.get("/api/v1/live/streams/me/key", headers=creator)).json()
        live_seconds = 3600  # killed when done: the latency is measured while it is live
        process = await publisher(key["rtmp_url"], live_seconds)
        try:
            stream_id = await live_stream(http, channel["id"])
            print(f"live: {stream_id}", flush=True)
            await asyncio.sleep(CLIP_SECONDS + 5)  # 30 s recorded
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_latency(http, stream_id, run.latency_before, stop))
            await asyncio.sleep(20)
            stop.set()
            await sampler
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_latency(http, stream_id, run.latency_during, stop))
            tasks = []
            for _ in range(args.clips):
                tasks.append(
                    asyncio.create_task(make_clip(http, viewer, stream_id, run, args.offset))
                )
                await asyncio.sleep(args.every)
            print(f"{args.clips} clips asked for; waiting for their MP4s", flush=True)
            made = await asyncio.gather(*tasks)
            stop.set()
            await sampler
        finally:
            if process.returncode is None:
                process.kill()
            code = await process.wait()
            print(f"publisher exited {code} (killed at the end: -9)")
        for timing, urls, playlist in made:
            copied, spliced, reencoded = await render_alone(http, urls, playlist, work)
            timing.copy_seconds = copied
            timing.splice_seconds, timing.splice_cpu = spliced
            timing.reencode_seconds, timing.reencode_cpu = reencoded
    return run


async def live_stream(http: httpx.AsyncClient, channel_id: str) -> str:
    for _ in range(300):
        streams = (await http.get(f"/api/v1/channels/{channel_id}/streams")).json()["data"]
        live = [s for s in streams if s["status"] == "live"]
        if live:
            return str(live[0]["id"])
        await asyncio.sleep(0.2)
    raise RuntimeError("the stream never went live")


def report(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    hls = [c.hls_seconds for c in run.clips]
    mp4 = [c.mp4_seconds for c in run.clips if c.mp4_seconds is not None]

    def alone(name: str) -> list[float]:
        return [v for c in run.clips if (v := getattr(c, name)) is not None]

    errors = [abs(c.frames - CLIP_SECONDS * FRAME_RATE) for c in run.clips if c.frames is not None]
    rows = [
        ("POST -> playable HLS (playlists + first segment)", hls),
        ("POST -> MP4 ready (30 s of 720p)", mp4),
        ("floor: ffmpeg -c copy of the same segments", alone("copy_seconds")),
        ("alone: splice (edge GOPs re-encoded), wall", alone("splice_seconds")),
        ("alone: splice, ffmpeg CPU seconds", alone("splice_cpu")),
        ("alone: whole clip re-encoded, wall", alone("reencode_seconds")),
        ("alone: whole clip re-encoded, ffmpeg CPU seconds", alone("reencode_cpu")),
        ("live latency before clipping", run.latency_before),
        ("live latency while clipping", run.latency_during),
    ]
    print(f"\nclips of a live 1280x720 {FRAME_RATE} fps stream, {len(run.clips)} clips of "
          f"{CLIP_SECONDS:.0f} s every {args.every} s, ladder {args.ladder}")  # fmt: skip
    print(f"{'':52} {'n':>4} {'p50 s':>8} {'p95 s':>8}")
    for name, values in rows:
        print(f"{name:52} {len(values):>4} {kit.percentile(sorted(values), 0.5):>8.3f} "
              f"{kit.percentile(sorted(values), 0.95):>8.3f}")  # fmt: skip
    print(f"MP4 duration error: max {max(errors, default=-1):.0f} frames "
          f"({len(errors)} MP4s; goal: within one frame)")  # fmt: skip
    return {
        "machine": kit.machine(ffmpeg=imageio_ffmpeg.get_ffmpeg_version()),
        "settings": vars(args),
        "rows": {
            name: {
                "n": len(v),
                "p50": kit.percentile(sorted(v), 0.5),
                "p95": kit.percentile(sorted(v), 0.95),
            }
            for name, v in rows
        },
        "max_frame_error": max(errors, default=-1),
        "clips": [asdict(c) for c in run.clips],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between two clips")
    parser.add_argument("--ladder", default="[]", help="STAGECAST_MEDIA_LADDER (JSON list)")
    parser.add_argument(
        "--offset", type=float, default=2.5, help="seconds behind the live edge a clip ends"
    )
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="stagecast-clips-") as temp:
        work = Path(temp)
        port = free_port()
        env = clean_env(
            STAGECAST_DATA_DIR=str(work / "data"),
            STAGECAST_RATE_LIMIT_ENABLED="false",
            STAGECAST_LOG_LEVEL="WARNING",
            STAGECAST_RTMP_PORT=str(free_port()),
            STAGECAST_RTMP_HOST="127.0.0.1",
            STAGECAST_MEDIA_LADDER=args.ladder,
        )
        subprocess.run(  # noqa: S603 - our own fixed command line
            [*stagecast_command(port)[:3], "db", "upgrade"], env=env, cwd=work, check=True,
            capture_output=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        with launched(
            stagecast_command(port), env=env, cwd=work, log=work / "server.log",
            ready_url=f"{base}/healthz",
        ):  # fmt: skip
            run = asyncio.run(measure(base, args, work))
    result = report(run, args)
    kit.write_json("clips", result)


if __name__ == "__main__":
    main()
