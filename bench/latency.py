"""Glass-to-glass latency of live streams: publisher to player, Stagecast beside nginx-rtmp.

What it measures (issue 5)
    A publisher process draws frames in Python (640x360 grey, 30 fps) whose top part is a grid
    of 8 x 5 big black/white blocks: 32 bits of the wall-clock milliseconds at which the frame
    is handed to the encoder, plus an 8-bit CRC. Each frame is written into ffmpeg's stdin at
    its own time (frame n at start + n/30 s); ffmpeg encodes it with libx264 (veryfast,
    zerolatency, a keyframe every segment: `-g 30 -keyint_min 30 -sc_threshold 0` at 1 s),
    adds a sine tone as AAC (real streams have audio) and publishes FLV over RTMP. The lower
    part of each frame is fresh random noise, so that the encoder spends its bitrate
    (800 kb/s at 360p, 2500 kb/s at 720p) the way a busy real picture would.

    Players read the HLS output the way hls.js and Safari do, then decode the time back out of
    the frames they would display. The same publisher and the same players run against
    Stagecast (`stagecast serve`, fMP4 segments from our packager) and, in the same run,
    against nginx with Debian's RTMP module (`hls on; hls_fragment 1s;
    hls_playlist_length 10s;`, MPEG-TS segments), each started on free ports in a temporary
    directory.

The player model
    - Join: load the playlist (the highest-bandwidth variant of a master playlist) and start
      at the live edge minus the hold-back, three target durations (RFC 8216 6.3.3; hls.js's
      `liveSyncDurationCount` 3 and Safari's default without EXT-X-SERVER-CONTROL): the
      segment holding that position is the first fetched, and its frames before the position
      are decoded but not shown.
    - Reload: like hls.js, the next playlist reload comes one target duration after a reload
      that brought new segments and half of one after a reload that did not, less the time
      the request took. Every new segment is fetched as soon as the playlist names it (with
      its EXT-X-MAP init segment, fetched once).
    - Decode: init + segment through `ffmpeg -f rawvideo -pix_fmt gray`; a segment is
      playable once its bytes have arrived plus the time ffmpeg took to decode it (each
      segment is decoded once and the result shared by the players, each player adding that
      decode time to its own arrival time).
    - Display: playback starts when the first segment is playable; each following frame is
      shown 1/30 s after the previous one (the source is constant frame rate, so this is its
      presentation time), unless its segment is not playable yet: then playback stalls until
      it is, and everything after is that much later (players do not catch up: hls.js's
      default `maxLiveSyncPlaybackRate` is 1).
    - Latency of a frame = the wall time the player shows it - the time encoded in it.
      Publisher, servers and players share this machine's clock.
    - Low-Latency HLS (Stagecast's default; a playlist with EXT-X-SERVER-CONTROL and
      EXT-X-PART), as hls.js plays it with `lowLatencyMode`: the join position is the last
      listed part minus PART-HOLD-BACK (three part targets), loading starts at the beginning
      of the segment holding it (a part without a keyframe cannot be decoded alone), each next
      part is awaited with a blocking playlist reload (`_HLS_msn`/`_HLS_part`) and fetched as
      soon as it is listed. A part is playable once its bytes are in plus the time ffmpeg takes
      to decode the segment's bytes so far (its frames are the ones beyond the earlier
      parts'). The same stream is also measured with Low-Latency HLS off ("plain HLS").

    One player only sees one join phase (where in the segment cycle it joined decides most of
    its latency), so players join one after another, every 1.3 s (a phase that cycles through
    the 1 s segment), each watching for 8 s. The median and p95 are over every frame every
    player showed; `start` is the median time from a player's join to its first frame.

CPU per stream-second
    user + system CPU of the server process and all its descendants (Stagecast's ffmpeg
    pipelines; nginx runs as one process) read from /proc at the window's start and end
    (exited children's time arrives in their parent's cutime/cstime), divided by the window's
    seconds times the live streams. It includes serving the players' requests. Measured for
    the 360p latency rows, and at 1280x720 for passthrough (`STAGECAST_MEDIA_LADDER=[]`) and
    for the default ladder (720p is not below a 720p source, so it is source + 480p + 360p,
    both transcoded by libx264 veryfast).

Concurrency
    A passthrough Stagecast server with 1, 2, 4, 8 ... (up to --max-streams) streams live at
    once for --step-duration seconds each. One stream carries the timestamp pattern and is
    measured as above; the others are ffmpeg publishers sending a pre-encoded testsrc2 + sine
    FLV at the same size, frame rate, GOP and bitrate cap with `-re -c copy` (so that the
    load generator costs almost nothing: pattern publishers and x264 encodes for eight streams
    would take the two cores away from the server measured). A step holds when the measured
    median is within +50% and +1 s of the one-stream step and every stream kept producing
    segments at real time (>= 90%). The sweep stops at the first step that does not hold.

hls.js in Chromium
    Beside the model, a real viewer (bench/hlsjs.py): hls.js as the web app configures it, in
    Debian's headless Chromium, reading the stamps off the frames it presents. Its rows are
    named "..., hls.js".

Long keyframe intervals (issue 13)
    The same at 360p with a publisher using OBS's default keyframe interval (`-g 250`, 8.3 s
    at 30 fps): passed through as it is (`STAGECAST_MEDIA_REENCODE_LONG_GOPS=false`) and with
    the top rendition re-encoded (the default), and the CPU of both at 720p.

Usage
    apt-get install -y nginx-light libnginx-mod-rtmp     # for the nginx-rtmp rows
    .venv/bin/python bench/latency.py [--duration 30] [--only stagecast|nginx]
        [--segment-seconds 1] [--skip-plain] [--skip-cpu] [--skip-concurrency] [--max-streams 8]
        [--step-duration 20] [--watch 8] [--join-every 1.3] [--skip-long-gop | --only-long-gop]
        [--skip-browser] [--browser-watch 20] [--browser-join-every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import hlsjs
import httpx
import imageio_ffmpeg
from kit import percentile, source_version
from serving import (
    clean_env,
    free_port,
    launched,
    register_creators,
    stagecast_command,
    stop_process,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "latency.json"

FPS = 30
HOLD_BACK_TARGETS = 3  # RFC 8216 6.3.3: start no closer than three target durations to the end
GOAL_MEDIAN_S = 4.0
RISE_FACTOR = 1.5  # a concurrency step "rises" above +50% ...
RISE_SECONDS = 1.0  # ... or +1 s over the one-stream median
KEPT_UP = 0.9  # every stream must produce >= 90% of real time in segments
STALL_REPORTED_S = 0.05  # gaps shorter than this are frame-timing jitter, not a visible stall
AUDIO_BITRATE = "128k"
SMALL = (640, 360, 800_000)
LARGE = (1280, 720, 2_500_000)
OBS_DEFAULT_GOP = 250  # OBS's Keyframe Interval "0 = auto": 250 frames, 8.3 s at 30 fps

# --- the timestamp pattern ----------------------------------------------------------------

COLUMNS, ROWS = 8, 5  # 40 blocks: 32 bits of milliseconds, then an 8-bit CRC
BANDS = 9  # the height is cut in 9 bands: 5 rows of blocks, then 4 of noise
STAMP_MODULUS = 1 << 32
NOISE_LEVELS = bytes(64 + value // 2 for value in range(256))  # noise in 64..191


def crc8(value: int) -> int:
    """CRC-8 (polynomial 0x07) of the four bytes of `value`, big-endian."""
    crc = 0
    for byte in value.to_bytes(4, "big"):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_bits(milliseconds: int) -> list[bool]:
    """The 40 block colours (True = white) of a time, most significant bit first."""
    value = milliseconds % STAMP_MODULUS
    word = value << 8 | crc8(value)
    return [bool(word >> (COLUMNS * ROWS - 1 - i) & 1) for i in range(COLUMNS * ROWS)]


@dataclass(frozen=True, slots=True)
class Geometry:
    """A frame size and where the blocks are in it."""

    width: int
    height: int

    @property
    def block_width(self) -> int:
        return self.width // COLUMNS

    @property
    def block_height(self) -> int:
        return self.height // BANDS

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def sample_points(self) -> list[tuple[int, ...]]:
        """For each block, five pixel offsets around its centre (the centre and +-1/4 block)."""
        bw, bh = self.block_width, self.block_height
        points = []
        for index in range(COLUMNS * ROWS):
            x = (index % COLUMNS) * bw + bw // 2
            y = (index // COLUMNS) * bh + bh // 2
            around = [
                (x, y),
                (x - bw // 4, y),
                (x + bw // 4, y),
                (x, y - bh // 4),
                (x, y + bh // 4),
            ]
            points.append(tuple(py * self.width + px for px, py in around))
        return points


def read_stamp(frame: bytes, points: Sequence[tuple[int, ...]]) -> int | None:
    """The milliseconds (mod 2**32) a grey frame carries, or None if its CRC does not match."""
    word = 0
    for offsets in points:
        level = sum(frame[offset] for offset in offsets)
        word = word << 1 | (level > 128 * len(offsets))
    value, check = word >> 8, word & 0xFF
    return value if crc8(value) == check else None


def unwrap(stamp: int, at: float) -> float:
    """The wall time (seconds) of a 32-bit millisecond stamp read at time `at` (not before it)."""
    now_ms = int(at * 1000)
    return (now_ms - (now_ms - stamp) % STAMP_MODULUS) / 1000


class PatternSource:
    """Grey frames: the time blocks on top, random noise below."""

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry
        bw = geometry.block_width
        self.black, self.white = bytes(bw), b"\xff" * bw
        self.pad = b"\x80" * (geometry.width - COLUMNS * bw)
        self.noise_bytes = (geometry.height - ROWS * geometry.block_height) * geometry.width

    def frame(self, milliseconds: int) -> bytes:
        bits = stamp_bits(milliseconds)
        parts = []
        for row in range(ROWS):
            cells = bits[row * COLUMNS : (row + 1) * COLUMNS]
            line = b"".join(self.white if bit else self.black for bit in cells) + self.pad
            parts.append(line * self.geometry.block_height)
        parts.append(os.urandom(self.noise_bytes).translate(NOISE_LEVELS))
        return b"".join(parts)


# --- publishers ------------------------------------------------------------------------------


def ffmpeg_path() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def encode_args(bitrate: int, gop: int) -> list[str]:
    """libx264 veryfast/zerolatency, a keyframe exactly every `gop` frames, AAC audio."""
    rate = str(bitrate)
    return [
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-b:v", rate, "-maxrate", rate, "-bufsize", rate,
        "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", "48000",
    ]  # fmt: skip


def rtmp_out(url: str) -> list[str]:
    return ["-f", "flv", "-flvflags", "no_duration_filesize", url]


def pattern_command(url: str, geometry: Geometry, bitrate: int, gop: int) -> list[str]:
    return [
        ffmpeg_path(), "-hide_banner", "-loglevel", "warning",
        "-f", "rawvideo", "-pix_fmt", "gray", "-video_size", geometry.size,
        "-framerate", str(FPS), "-i", "pipe:0",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-map", "0:v", "-map", "1:a", *encode_args(bitrate, gop), *rtmp_out(url),
    ]  # fmt: skip


def publish_pattern(
    command: list[str], geometry: Geometry, log: str, stop: Event, report: Connection
) -> None:
    """The publisher process: write frame n at start + n/FPS, stamped as it is written."""
    source = PatternSource(geometry)
    frames = late = 0
    error = None
    with open(log, "wb") as errors:
        process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, bufsize=0
        )
    assert process.stdin is not None  # noqa: S101 - Popen(stdin=PIPE) always has one
    start = time.time()
    try:
        while not stop.is_set() and process.poll() is None:
            wait = start + frames / FPS - time.time()
            if wait > 0:
                time.sleep(wait)
            elif wait < -1 / FPS:
                late += 1
            process.stdin.write(source.frame(time.time_ns() // 1_000_000))
            frames += 1
    except BrokenPipeError:
        error = "ffmpeg closed its input"
    # The sine input never ends, so EOF on the video alone would not stop ffmpeg: SIGINT makes
    # it flush and close the RTMP session cleanly (deleteStream), which ends the stream.
    process.send_signal(signal.SIGINT)
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    report.send({"frames": frames, "late_frames": late, "exit_code": code, "error": error})


def publisher_failed(report: dict[str, Any]) -> bool:
    """ffmpeg exits 255 when SIGINT stops it: that is the clean stop asked for."""
    return bool(report.get("error")) or report.get("exit_code") not in {0, 255}


class PatternPublisher:
    """A process that publishes the timestamp pattern until `stop()`."""

    def __init__(self, url: str, geometry: Geometry, bitrate: int, gop: int, log: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._reports, sender = context.Pipe(duplex=False)
        command = pattern_command(url, geometry, bitrate, gop)
        self.log = log
        self._process = context.Process(
            target=publish_pattern,
            args=(command, geometry, str(log), self._stop, sender),
            daemon=True,
        )
        self._process.start()
        sender.close()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        report: dict[str, Any] = {"error": "the publisher process sent no report"}
        if self._reports.poll(40):
            report = self._reports.recv()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
        if publisher_failed(report):
            report["ffmpeg_said"] = self.log.read_text(errors="replace")[-1000:]
        return report


def make_filler(path: Path, geometry: Geometry, bitrate: int, gop: int, seconds: float) -> None:
    """Encode testsrc2 + sine once, with the same settings as the pattern, for -c copy."""
    command = [
        ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={geometry.size}:rate={FPS}",
        "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000",
        "-t", f"{seconds:.0f}", "-map", "0:v", "-map", "1:a", *encode_args(bitrate, gop),
        "-f", "flv", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - fixed command line


def start_filler(path: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    command = [
        ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-stream_loop", "-1", "-i", str(path), "-c", "copy", *rtmp_out(url),
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own fixed command line
            command, stdout=subprocess.DEVNULL, stderr=out
        )


# --- servers under test -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one stream is published, and how its playlist is found once it is live."""

    publish_url: str
    channel_id: str | None = None  # Stagecast: the live stream id comes from the channel
    playlist_url: str | None = None  # nginx-rtmp: known in advance


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    pid: int
    base_url: str
    container: str  # what ffmpeg's demuxer is told the segments are: "mov" or "mpegts"
    slots: tuple[Slot, ...]


def stagecast_env(
    data_dir: Path,
    rtmp_port: int,
    args: argparse.Namespace,
    ladder: str,
    low_latency: bool,
    **more: str,
) -> dict[str, str]:
    return clean_env(
        **more,
        STAGECAST_DATA_DIR=str(data_dir),
        STAGECAST_RTMP_HOST="127.0.0.1",
        STAGECAST_RTMP_PORT=str(rtmp_port),
        STAGECAST_RATE_LIMIT_ENABLED="false",
        STAGECAST_LOG_LEVEL="WARNING",
        STAGECAST_MEDIA_LADDER=ladder,
        STAGECAST_MEDIA_SEGMENT_SECONDS=f"{args.segment_seconds:g}",
        STAGECAST_MEDIA_LOW_LATENCY="true" if low_latency else "false",
        STAGECAST_MEDIA_MAX_PIPELINES=str(max(8, args.max_streams + 2)),
    )


def prepare_stagecast(base_url: str, rtmp_port: int, streams: int) -> tuple[Slot, ...]:
    """A user, a channel and a stream key per stream, through the HTTP API."""
    slots = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for creator in register_creators(http, "latency_", streams):
            response = http.get("/api/v1/live/streams/me/key", headers=creator.headers)
            response.raise_for_status()
            key = response.json()["stream_key"]
            url = f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"
            slots.append(Slot(publish_url=url, channel_id=creator.channel_id))
    return tuple(slots)


@contextlib.contextmanager
def stagecast_target(
    args: argparse.Namespace,
    *,
    ladder: str,
    streams: int,
    low_latency: bool = True,
    reencode_long_gops: bool = True,
) -> Iterator[Target]:
    port, rtmp_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="stagecast-latency-") as tmp:
        data_dir = Path(tmp)
        base = f"http://127.0.0.1:{port}"
        with launched(
            stagecast_command(port),
            env=stagecast_env(
                data_dir,
                rtmp_port,
                args,
                ladder,
                low_latency,
                STAGECAST_MEDIA_REENCODE_LONG_GOPS=str(reencode_long_gops).lower(),
            ),
            cwd=data_dir,
            log=data_dir / "server.log",
            ready_url=f"{base}/readyz",
        ) as process:
            slots = prepare_stagecast(base, rtmp_port, streams)
            yield Target("stagecast", process.pid, base, "mov", slots)


NGINX_MODULE = "ngx_rtmp_module.so"
NGINX_INSTALL = "apt-get install -y nginx-light libnginx-mod-rtmp   (or: nginx libnginx-mod-rtmp)"


def nginx_build() -> tuple[str, str, str] | None:
    """(nginx binary, the RTMP module's path, `nginx -V` output), or None when either is missing."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if binary is None:
        return None
    configure = subprocess.run(  # noqa: S603 - our own fixed command line
        [binary, "-V"], capture_output=True, text=True, check=False
    ).stderr
    found = re.search(r"--modules-path=(\S+)", configure)
    modules = Path(found.group(1) if found else "/usr/lib/nginx/modules")
    module = modules / NGINX_MODULE
    return (binary, str(module), configure) if module.exists() else None


def nginx_config(
    work: Path, module: str, configure: str, http_port: int, rtmp_port: int, segment: float
) -> str:
    temp_paths = "\n".join(
        f"    {kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        if f"--without-http_{kind}_module" not in configure
    )
    return f"""\
load_module {module};
daemon off;
master_process off;
worker_processes 1;
pid {work / "nginx.pid"};
error_log {work / "error.log"} warn;
events {{ worker_connections 1024; }}
rtmp {{
  server {{
    listen 127.0.0.1:{rtmp_port};
    chunk_size 4096;
    application live {{
      live on;
      record off;
      hls on;
      hls_path {work / "hls"};
      hls_fragment {round(segment * 1000)}ms;
      hls_playlist_length 10s;
    }}
  }}
}}
http {{
{temp_paths}
    access_log off;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{ alias {work / "hls"}/; add_header Cache-Control no-cache; }}
        location = /ready {{ return 200 "ready"; }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_target(args: argparse.Namespace, build: tuple[str, str, str]) -> Iterator[Target]:
    binary, module, configure = build
    http_port, rtmp_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="nginx-latency-") as tmp:
        work = Path(tmp)
        (work / "hls").mkdir()
        config = work / "nginx.conf"
        config.write_text(
            nginx_config(work, module, configure, http_port, rtmp_port, args.segment_seconds)
        )
        base = f"http://127.0.0.1:{http_port}"
        command = [binary, "-p", str(work), "-c", str(config), "-e", str(work / "error.log")]
        with launched(
            command, env=clean_env(), cwd=work, log=work / "nginx.out", ready_url=f"{base}/ready"
        ) as process:
            slot = Slot(
                publish_url=f"rtmp://127.0.0.1:{rtmp_port}/live/bench",
                playlist_url=f"{base}/hls/bench.m3u8",
            )
            yield Target("nginx-rtmp", process.pid, base, "mpegts", (slot,))


# --- CPU from /proc -----------------------------------------------------------------------

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and every live descendant, with their reaped children's."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # processes come and go
            fields = stat.read_text().rpartition(")")[2].split()
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            ticks[pid] = sum(int(value) for value in fields[11:15])  # u+s time, cu+cs time
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(ticks.get(pid, 0) for pid in tree) / TICKS_PER_SECOND


def ffmpeg_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of the live ffmpeg processes below `root`: the pipelines'."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            head, _, rest = stat.read_text().rpartition(")")
            fields = rest.split()
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            if head.partition("(")[2].startswith("ffmpeg"):  # imageio's: ffmpeg-linux-x…
                ticks[pid] = int(fields[11]) + int(fields[12])
    total = 0
    for pid, used in ticks.items():
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor != root:
            ancestor = parents.get(ancestor)
        total += used if ancestor == root else 0
    return total / TICKS_PER_SECOND


def machine_busy_seconds() -> float:
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS_PER_SECOND  # all but idle and iowait


# --- playlists ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    sequence: int
    duration: float
    url: str
    map_url: str | None


@dataclass(frozen=True, slots=True)
class Part:
    """A partial segment (LL-HLS `EXT-X-PART`)."""

    sequence: int  # of the segment it belongs to
    index: int
    duration: float
    url: str
    map_url: str | None


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration: float
    segments: tuple[Segment, ...]
    ended: bool
    # Low-Latency HLS: the parts listed per segment (the open one included), PART-HOLD-BACK.
    parts: dict[int, tuple[Part, ...]] = field(default_factory=dict)
    part_hold_back: float | None = None
    first_sequence: int = 0

    @property
    def last_sequence(self) -> int:
        return self.segments[-1].sequence if self.segments else -1

    @property
    def open_sequence(self) -> int:
        """The segment being cut (listed only through its parts)."""
        return self.last_sequence + 1 if self.segments else self.first_sequence


def _attribute(line: str, name: str) -> str | None:
    found = re.search(rf'(?:^|[:,]){name}=("[^"]*"|[^,]*)', line)
    return found.group(1).strip('"') if found else None


def parse_media_playlist(text: str, url: str) -> MediaPlaylist:
    target, sequence, ended = 0.0, 0, False
    duration, map_url = 0.0, None
    segments: list[Segment] = []
    parts: dict[int, list[Part]] = {}
    hold_back: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.partition(":")[2])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.partition(":")[2])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            value = _attribute(line, "PART-HOLD-BACK")
            hold_back = float(value) if value else None
        elif line.startswith("#EXT-X-MAP:"):
            found = _attribute(line, "URI")
            map_url = urljoin(url, found) if found else None
        elif line.startswith("#EXT-X-PART:"):
            number = sequence + len(segments)
            listed = parts.setdefault(number, [])
            part_url = urljoin(url, _attribute(line, "URI") or "")
            part_duration = float(_attribute(line, "DURATION") or 0)
            listed.append(Part(number, len(listed), part_duration, part_url, map_url))
        elif line.startswith("#EXTINF:"):
            duration = float(line.partition(":")[2].partition(",")[0])
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line and not line.startswith("#"):
            segments.append(
                Segment(sequence + len(segments), duration, urljoin(url, line), map_url)
            )
    return MediaPlaylist(
        target or 1.0,
        tuple(segments),
        ended,
        {number: tuple(listed) for number, listed in parts.items()},
        hold_back,
        sequence,
    )


def variants(text: str, url: str) -> list[tuple[int, str, str]]:
    """(BANDWIDTH, RESOLUTION, absolute URI) of each variant of a master playlist."""
    found = []
    lines = [line.strip() for line in text.splitlines()]
    for index, line in enumerate(lines[:-1]):
        if line.startswith("#EXT-X-STREAM-INF:"):
            bandwidth = re.search(r"BANDWIDTH=(\d+)", line)
            resolution = re.search(r"RESOLUTION=(\d+x\d+)", line)
            found.append(
                (
                    int(bandwidth.group(1)) if bandwidth else 0,
                    resolution.group(1) if resolution else "?",
                    urljoin(url, lines[index + 1]),
                )
            )
    return found


async def fetch(http: httpx.AsyncClient, url: str) -> bytes:
    response = await http.get(url)
    response.raise_for_status()
    return response.content


async def media_playlist_url(http: httpx.AsyncClient, url: str) -> tuple[str, list[str]]:
    """The media playlist a player picks (the highest bandwidth), and the renditions offered."""
    text = (await fetch(http, url)).decode()
    offered = variants(text, url)
    if not offered:
        return url, []
    best = max(offered)
    return best[2], [resolution for _, resolution, _ in offered]


# --- the player ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    stamps: list[int | None]
    seconds: float  # how long ffmpeg took
    error: str | None = None


class SegmentDecoder:
    """Decode each segment once (ffmpeg to grey raw frames) and read the stamps out."""

    def __init__(self, geometry: Geometry, container: str) -> None:
        self.geometry = geometry
        self.points = geometry.sample_points()
        self.container = container
        self._tasks: dict[str, asyncio.Task[Decoded]] = {}

    def decode(self, key: str, data: bytes) -> asyncio.Task[Decoded]:
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.create_task(self._run(data))
        return task

    async def _run(self, data: bytes) -> Decoded:
        command = [
            ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", self.container, "-i", "pipe:0", "-map", "0:v:0", "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "gray", "-s", self.geometry.size, "pipe:1",
        ]  # fmt: skip
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(data)
        seconds = time.monotonic() - started
        size = self.geometry.width * self.geometry.height
        stamps = [
            read_stamp(out[i : i + size], self.points) for i in range(0, len(out) - size + 1, size)
        ]
        error = err.decode(errors="replace").strip()[-300:] if process.returncode else None
        return Decoded(stamps, seconds, error)


@dataclass(slots=True)
class Fetched:
    """A segment the player has downloaded."""

    sequence: int
    arrived: float  # wall time its last byte was in
    decoded: asyncio.Task[Decoded]
    skip_frames: int  # frames before the start position (first segment only)


@dataclass
class PlayerResult:
    joined: float  # seconds after the window opened
    start_seconds: float  # join to the first frame shown
    latencies: list[float]
    stalls: int
    stall_seconds: float
    unreadable: int
    segments: int
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Shown:
    latencies: list[float] = field(default_factory=list)
    first: float | None = None
    stalls: int = 0
    stall_seconds: float = 0.0
    unreadable: int = 0


def show(segments: Sequence[tuple[Fetched, Decoded]], until: float) -> Shown:
    """When each frame is displayed (see the module docstring), and its latency."""
    shown = Shown()
    clock: float | None = None
    for fetched, decoded in segments:
        playable = fetched.arrived + decoded.seconds
        for index, stamp in enumerate(decoded.stamps[fetched.skip_frames :]):
            due = playable if clock is None else clock + 1 / FPS
            if due < playable:
                shown.stall_seconds += playable - due
                shown.stalls += index == 0 and playable - due > STALL_REPORTED_S
                due = playable
            clock = due
            if clock > until:
                return shown
            if shown.first is None:
                shown.first = clock
            sent = None if stamp is None else unwrap(stamp, clock)
            if sent is None or clock - sent > 600:
                shown.unreadable += 1
            else:
                shown.latencies.append(clock - sent)
    return shown


class Player:
    """One viewer: joins at the hold-back position, reloads like hls.js, fetches everything new."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, decoder: SegmentDecoder, watch: float
    ) -> None:
        self.http, self.url, self.decoder, self.watch = http, url, decoder, watch
        self.fetched: list[Fetched] = []
        self.inits: dict[str, bytes] = {}
        self.errors: list[str] = []
        self.next_sequence: int | None = None
        self.skip_frames = 0

    def start_point(self, playlist: MediaPlaylist) -> None:
        """The segment holding `end - 3 x target duration`, and the frames before it in there."""
        total = sum(segment.duration for segment in playlist.segments)
        position = max(0.0, total - HOLD_BACK_TARGETS * playlist.target_duration)
        start = 0.0
        for segment in playlist.segments:
            if start + segment.duration > position:
                self.next_sequence = segment.sequence
                self.skip_frames = max(0, math.ceil((position - start) * FPS - 1e-6))
                return
            start += segment.duration
        self.next_sequence = playlist.last_sequence + 1

    async def fetch_segment(self, segment: Segment) -> None:
        init = b""
        if segment.map_url is not None:
            if segment.map_url not in self.inits:
                self.inits[segment.map_url] = await fetch(self.http, segment.map_url)
            init = self.inits[segment.map_url]
        body = await fetch(self.http, segment.url)
        arrived = time.time()
        skip = 0 if self.fetched else self.skip_frames
        decoded = self.decoder.decode(segment.url, init + body)
        self.fetched.append(Fetched(segment.sequence, arrived, decoded, skip))
        if self.next_sequence is not None and segment.sequence > self.next_sequence:
            self.errors.append(f"segments {self.next_sequence}..{segment.sequence - 1} missed")
        self.next_sequence = segment.sequence + 1

    async def reload(self, until: float) -> tuple[MediaPlaylist | None, bool]:
        """Load the playlist and fetch what is new: (the playlist, whether anything was new)."""
        try:
            playlist = parse_media_playlist((await fetch(self.http, self.url)).decode(), self.url)
            if self.next_sequence is None:
                self.start_point(playlist)
            new = [s for s in playlist.segments if s.sequence >= (self.next_sequence or 0)]
            for segment in new:
                if time.time() >= until:
                    break
                await self.fetch_segment(segment)
        except httpx.HTTPError as error:
            self.errors.append(repr(error))
            return None, False
        return playlist, bool(new)

    async def play(self, joined: float) -> PlayerResult:
        until = joined + self.watch
        target = 1.0
        while time.time() < until:
            asked = time.time()
            playlist, changed = await self.reload(until)
            if playlist is not None:
                target = playlist.target_duration
                if playlist.ended:
                    break
            wait = (target if changed else target / 2) - (time.time() - asked)
            await asyncio.sleep(max(0.0, min(wait, until - time.time())))
        decoded = [await fetched.decoded for fetched in self.fetched]
        return self.outcome(joined, until, decoded)

    def outcome(self, joined: float, until: float, decoded: list[Decoded]) -> PlayerResult:
        """What the player showed, given each fetched piece's decoded frames."""
        self.errors += [d.error for d in decoded if d.error]
        shown = show(list(zip(self.fetched, decoded, strict=True)), until)
        return PlayerResult(
            joined=joined,
            start_seconds=(shown.first - joined) if shown.first is not None else math.nan,
            latencies=shown.latencies,
            stalls=shown.stalls,
            stall_seconds=shown.stall_seconds,
            unreadable=shown.unreadable,
            segments=len(self.fetched),
            errors=self.errors,
        )


class LowLatencyPlayer(Player):
    """A viewer of a Low-Latency HLS playlist, as hls.js plays one with `lowLatencyMode` on.

    It joins PART-HOLD-BACK behind the last listed part, at the start of the segment holding
    that position (a part that does not begin with a keyframe cannot be decoded alone), then
    asks for the next part with a blocking playlist reload (`_HLS_msn` / `_HLS_part`) and
    fetches each part as soon as a playlist lists it. A part's frames are those a decoder gets
    from the segment's bytes so far beyond what the earlier parts gave.
    """

    def __init__(
        self, http: httpx.AsyncClient, url: str, decoder: SegmentDecoder, watch: float
    ) -> None:
        super().__init__(http, url, decoder, watch)
        self.next_part = 0
        self.so_far: dict[int, bytes] = {}  # segment -> its bytes fetched so far
        self.previous: dict[int, asyncio.Task[Decoded]] = {}  # segment -> the last decode
        self.earlier: list[asyncio.Task[Decoded] | None] = []  # per fetched piece

    def start_at(self, playlist: MediaPlaylist) -> None:
        """The segment holding `edge - PART-HOLD-BACK`, and the frames before it in there."""
        hold_back = playlist.part_hold_back or HOLD_BACK_TARGETS * playlist.target_duration
        timeline = [(s.sequence, s.duration) for s in playlist.segments]
        open_parts = playlist.parts.get(playlist.open_sequence, ())
        if open_parts:
            timeline.append((playlist.open_sequence, sum(p.duration for p in open_parts)))
        position = max(0.0, sum(duration for _, duration in timeline) - hold_back)
        start = 0.0
        for sequence, duration in timeline:
            if start + duration > position:
                self.next_sequence = sequence
                self.skip_frames = max(0, math.ceil((position - start) * FPS - 1e-6))
                return
            start += duration
        self.next_sequence = playlist.open_sequence

    async def take(
        self, url: str, map_url: str | None, sequence: int, *, whole: bool = False
    ) -> None:
        """Fetch a part (or the whole segment, which holds every part) and decode it."""
        init = b""
        if map_url is not None:
            if map_url not in self.inits:
                self.inits[map_url] = await fetch(self.http, map_url)
            init = self.inits[map_url]
        body = await fetch(self.http, url)
        arrived = time.time()
        so_far = body if whole else self.so_far.get(sequence, b"") + body
        self.so_far[sequence] = so_far
        decoded = self.decoder.decode(url, init + so_far)
        skip = 0 if self.fetched else self.skip_frames
        self.fetched.append(Fetched(sequence, arrived, decoded, skip))
        self.earlier.append(self.previous.get(sequence))
        self.previous[sequence] = decoded

    async def step(self, playlist: MediaPlaylist) -> bool:
        """Fetch the next piece the playlist offers; False when it has nothing new yet."""
        sequence = self.next_sequence if self.next_sequence is not None else 0
        parts = playlist.parts.get(sequence, ())
        complete = next((s for s in playlist.segments if s.sequence == sequence), None)
        if self.next_part < len(parts):
            part = parts[self.next_part]
            await self.take(part.url, part.map_url, sequence)
            self.next_part += 1
            return True
        if complete is not None:
            if not parts:  # no parts listed for it (behind the edge): the whole segment
                await self.take(complete.url, complete.map_url, sequence, whole=True)
            self.next_sequence, self.next_part = sequence + 1, 0
            return True
        return False

    async def play(self, joined: float) -> PlayerResult:
        until = joined + self.watch
        try:
            playlist = parse_media_playlist((await fetch(self.http, self.url)).decode(), self.url)
            self.start_at(playlist)
            while time.time() < until and not playlist.ended:
                if await self.step(playlist):
                    continue
                wanted = {"_HLS_msn": self.next_sequence, "_HLS_part": self.next_part}
                timeout = max(0.1, until - time.time())
                response = await self.http.get(self.url, params=wanted, timeout=timeout)
                if response.status_code == 503:  # not there within 3 target durations: again
                    self.errors.append("a blocking reload timed out")
                    continue
                response.raise_for_status()
                playlist = parse_media_playlist(response.text, self.url)
        except httpx.TimeoutException:
            pass  # the watch ended while a reload was blocked
        except httpx.HTTPError as error:
            self.errors.append(repr(error))
        decoded = []
        for fetched, earlier in zip(self.fetched, self.earlier, strict=True):
            whole = await fetched.decoded
            before = len((await earlier).stamps) if earlier is not None else 0
            decoded.append(Decoded(whole.stamps[before:], whole.seconds, whole.error))
        return self.outcome(joined, until, decoded)


# --- one measured case --------------------------------------------------------------------


@dataclass
class CaseResult:
    case: str
    server: str
    source: str
    renditions: list[str]
    streams: int
    players: int = 0
    frames: int = 0
    unreadable: int = 0
    start_s: float = math.nan
    median_s: float = math.nan
    p95_s: float = math.nan
    min_s: float = math.nan
    max_s: float = math.nan
    stalls: int = 0
    stall_seconds: float = 0.0
    target_duration: float = math.nan
    window_s: float = 0.0
    server_cpu_s: float = math.nan
    cpu_per_stream_s: float = math.nan
    ffmpeg_cpu_per_stream_s: float = math.nan  # the pipelines' ffmpeg alone
    gop_frames: int = 0  # the publisher's keyframe interval
    player: str = "model"  # "model" (this script's players) or "hls.js" (Chromium)
    machine_busy_pct: float = math.nan
    kept_up: float = math.nan  # the slowest stream's media seconds per wall second
    player_medians: list[float] = field(default_factory=list)
    publisher: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Settings:
    duration: float
    watch: float
    join_every: float
    segment_seconds: float
    browser_watch: float = 20.0
    browser_join_every: float = 5.0

    def join_offsets(self) -> list[float]:
        return offsets(self.duration, self.watch, self.join_every)

    def browser_join_offsets(self) -> list[float]:
        return offsets(self.duration, self.browser_watch, self.browser_join_every)


def offsets(duration: float, watch: float, every: float) -> list[float]:
    """When players join (seconds into the window), each watching `watch` within it."""
    watch = min(watch, duration)
    count = int((duration - watch) / every) + 1
    return [i * every for i in range(count)]


async def playback_url(http: httpx.AsyncClient, target: Target, slot: Slot) -> str:
    """Wait until the slot's stream is live and its playlist is served."""
    while True:
        url = slot.playlist_url
        if slot.channel_id is not None:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                channel = await http.get(f"{target.base_url}/api/v1/channels/{slot.channel_id}")
                stream_id = channel.json().get("live_stream_id")
                url = f"{target.base_url}/hls/{stream_id}/master.m3u8" if stream_id else None
        if url is not None:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return url
        await asyncio.sleep(0.25)


async def load_playlist(http: httpx.AsyncClient, url: str) -> MediaPlaylist:
    return parse_media_playlist((await fetch(http, url)).decode(), url)


async def wait_for_content(http: httpx.AsyncClient, url: str) -> MediaPlaylist:
    """Wait until the playlist is long enough for a player to hold back from its end."""
    while True:
        with contextlib.suppress(httpx.HTTPError):
            playlist = await load_playlist(http, url)
            # Long keyframe intervals make long segments: 20 s of them is plenty to join.
            needed = min((HOLD_BACK_TARGETS + 2) * playlist.target_duration, 20.0)
            if sum(s.duration for s in playlist.segments) >= needed:
                return playlist
        await asyncio.sleep(0.5)


@dataclass
class Window:
    """What one measurement window produced."""

    players: list[PlayerResult]
    renditions: list[str]
    target_duration: float
    wall: float
    server_cpu: float
    ffmpeg_cpu: float
    machine_busy: float
    kept_up: float


async def join_later(player: Player, delay: float, origin: float) -> PlayerResult:
    await asyncio.sleep(max(0.0, origin + delay - time.time()))
    result = await player.play(time.time())
    result.joined = round(result.joined - origin, 2)
    return result


async def stream_progress(http: httpx.AsyncClient, urls: list[str]) -> list[MediaPlaylist]:
    return list(await asyncio.gather(*(load_playlist(http, url) for url in urls)))


def kept_up(before: list[MediaPlaylist], after: list[MediaPlaylist], wall: float) -> float:
    """The slowest stream's segments produced in the window, in media seconds per second."""
    rates = []
    for old, new in zip(before, after, strict=True):
        mean = statistics.fmean(s.duration for s in new.segments) if new.segments else 0.0
        rates.append((new.last_sequence - old.last_sequence) * mean / wall)
    return min(rates)


async def model_players(
    kind: type[Player],
    http: httpx.AsyncClient,
    url: str,
    decoder: SegmentDecoder,
    settings: Settings,
    origin: float,
) -> list[PlayerResult]:
    """This script's players, joining one after another (see the module docstring)."""
    return list(
        await asyncio.gather(
            *(
                join_later(kind(http, url, decoder, settings.watch), delay, origin)
                for delay in settings.join_offsets()
            )
        )
    )


def browser_result(seen: dict[str, Any], origin: float) -> PlayerResult:
    """What one Chromium page saw, as a model player's result."""
    latencies = [x for x in seen["latencies"] if x < 600]
    first = seen.get("first")
    return PlayerResult(
        joined=round(seen["joined"] - origin, 2),
        start_seconds=first / 1000 - seen["joined"] if first else math.nan,
        latencies=latencies,
        stalls=seen["stalls"],
        stall_seconds=seen["stallSeconds"],
        unreadable=seen["unreadable"] + len(seen["latencies"]) - len(latencies),
        segments=0,
        errors=[*seen["errors"], f"hls.js stall reports: {seen['hlsStalls']}"]
        if seen["hlsStalls"]
        else seen["errors"],
    )


async def in_chromium(
    master: str, geometry: Geometry, settings: Settings, origin: float
) -> list[PlayerResult]:
    """hls.js viewers in Chromium (bench/hlsjs.py), joining as the browser settings say."""
    joins = settings.browser_join_offsets()
    seen = await hlsjs.watch_streams(
        master,
        width=geometry.width,
        band=ROWS * geometry.block_height,
        points=geometry.sample_points(),
        joins=joins,
        watch=min(settings.browser_watch, settings.duration),
        fps=FPS,
        stall_reported=STALL_REPORTED_S,
    )
    return [browser_result(page, origin) for page in seen]


async def measure(
    target: Target, streams: int, geometry: Geometry, settings: Settings, *, browser: bool = False
) -> Window:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=15, limits=limits) as http:
        async with asyncio.timeout(120):
            urls = await asyncio.gather(
                *(playback_url(http, target, s) for s in target.slots[:streams])
            )
            picked = [await media_playlist_url(http, url) for url in urls]
            media = [url for url, _ in picked]
            first, *_ = await asyncio.gather(*(wait_for_content(http, url) for url in media))
        before = await stream_progress(http, media)
        decoder = SegmentDecoder(geometry, target.container)
        cpu, busy = tree_cpu_seconds(target.pid), machine_busy_seconds()
        ffmpeg_cpu = ffmpeg_cpu_seconds(target.pid)
        opened, origin = time.monotonic(), time.time()
        kind = LowLatencyPlayer if first.part_hold_back is not None else Player
        viewing = asyncio.create_task(
            in_chromium(urls[0], geometry, settings, origin)
            if browser
            else model_players(kind, http, media[0], decoder, settings, origin)
        )
        await asyncio.sleep(settings.duration)
        cpu, busy = tree_cpu_seconds(target.pid) - cpu, machine_busy_seconds() - busy
        ffmpeg_cpu = ffmpeg_cpu_seconds(target.pid) - ffmpeg_cpu
        wall = time.monotonic() - opened
        after = await stream_progress(http, media)
        results = await viewing
    return Window(
        players=results,
        renditions=picked[0][1] or [geometry.size],
        target_duration=first.target_duration,
        wall=wall,
        server_cpu=cpu,
        ffmpeg_cpu=ffmpeg_cpu,
        machine_busy=busy,
        kept_up=kept_up(before, after, wall),
    )


async def wait_idle(target: Target, slots: Sequence[Slot], within: float = 45) -> bool:
    """Stagecast: wait until none of these channels is live any more (the streams ended)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=target.base_url, timeout=10) as http:
        while time.monotonic() < deadline:
            live = 0
            for slot in slots:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    live += bool(
                        (await http.get(f"/api/v1/channels/{slot.channel_id}"))
                        .json()
                        .get("live_stream_id")
                    )
            if not live:
                return True
            await asyncio.sleep(0.5)
    return False


def summarize(result: CaseResult, window: Window, publisher: dict[str, Any]) -> CaseResult:
    latencies = sorted(x for p in window.players for x in p.latencies)
    result.renditions = window.renditions
    result.players = len(window.players)
    result.frames = len(latencies)
    result.unreadable = sum(p.unreadable for p in window.players)
    starts = [p.start_seconds for p in window.players if not math.isnan(p.start_seconds)]
    result.start_s = round(statistics.median(starts), 3) if starts else math.nan
    result.median_s = round(percentile(latencies, 0.5), 3)
    result.p95_s = round(percentile(latencies, 0.95), 3)
    result.min_s = round(latencies[0], 3) if latencies else math.nan
    result.max_s = round(latencies[-1], 3) if latencies else math.nan
    result.stalls = sum(p.stalls for p in window.players)
    result.stall_seconds = round(sum(p.stall_seconds for p in window.players), 3)
    result.target_duration = window.target_duration
    result.window_s = round(window.wall, 2)
    result.server_cpu_s = round(window.server_cpu, 2)
    result.cpu_per_stream_s = round(window.server_cpu / (window.wall * result.streams), 4)
    result.ffmpeg_cpu_per_stream_s = round(window.ffmpeg_cpu / (window.wall * result.streams), 4)
    cores = len(os.sched_getaffinity(0))
    result.machine_busy_pct = round(100 * window.machine_busy / (window.wall * cores), 1)
    result.kept_up = round(window.kept_up, 3)
    result.player_medians = [
        round(statistics.median(p.latencies), 3) for p in window.players if p.latencies
    ]
    result.publisher = publisher
    result.errors += [error for p in window.players for error in p.errors][:20]
    if publisher_failed(publisher):
        result.errors.append(f"publisher: {publisher}")
    return result


def run_case(
    target: Target,
    case: str,
    source: tuple[int, int, int],
    args: argparse.Namespace,
    *,
    streams: int = 1,
    filler: Path | None = None,
    duration: float | None = None,
    gop: int | None = None,
    browser: bool = False,
) -> CaseResult:
    """Publish (one pattern stream, plus `streams - 1` filler streams), measure, stop.

    `gop`: the publisher's keyframe interval in frames (default: one per segment);
    `browser`: hls.js in Chromium watches instead of the model players."""
    width, height, bitrate = source
    geometry = Geometry(width, height)
    gop = gop or max(1, round(FPS * args.segment_seconds))
    settings = Settings(
        duration or args.duration,
        args.watch,
        args.join_every,
        args.segment_seconds,
        args.browser_watch,
        args.browser_join_every,
    )
    result = CaseResult(case, target.name, geometry.size, [], streams)
    result.gop_frames, result.player = gop, "hls.js" if browser else "model"
    print(f"{target.name}: {case} ({geometry.size}, {streams} stream(s)) ...", flush=True)
    logs = Path(tempfile.mkdtemp(prefix="latency-publishers-"))
    publisher = PatternPublisher(
        target.slots[0].publish_url, geometry, bitrate, gop, logs / "pattern.log"
    )
    fillers = []
    try:
        if filler is not None:
            for index, slot in enumerate(target.slots[1:streams], start=1):
                fillers.append(start_filler(filler, slot.publish_url, logs / f"filler{index}.log"))
        window = asyncio.run(measure(target, streams, geometry, settings, browser=browser))
    except TimeoutError:
        window = None
        result.errors.append("the stream(s) did not go live with enough segments within 120 s")
    finally:
        report = publisher.stop()
        for process in fillers:
            stop_process(process)
    if target.name == "stagecast" and not asyncio.run(wait_idle(target, target.slots[:streams])):
        result.errors.append("a stream was still live 45 s after its publisher stopped")
    shutil.rmtree(logs, ignore_errors=True)
    if window is None:
        result.publisher = report
        print(f"  failed: {result.errors}", flush=True)
        return result
    summarize(result, window, report)
    print(
        f"  {result.players} players, {result.frames} frames: median {result.median_s:.2f} s, "
        f"p95 {result.p95_s:.2f} s, start {result.start_s:.2f} s, {result.stalls} stalls; "
        f"target duration {result.target_duration:g} s; server cpu {result.cpu_per_stream_s:.3f} "
        f"s per stream-second (ffmpeg {result.ffmpeg_cpu_per_stream_s:.3f}); machine "
        f"{result.machine_busy_pct:.0f}% busy",
        flush=True,
    )
    for error in result.errors[:5]:
        print(f"  error: {error}", flush=True)
    return result


# --- the concurrency sweep ----------------------------------------------------------------


def stream_steps(maximum: int) -> list[int]:
    steps, count = [], 1
    while count < maximum:
        steps.append(count)
        count *= 2
    return [*steps, maximum]


def step_holds(step: CaseResult, baseline: CaseResult) -> tuple[bool, str]:
    if step.errors and math.isnan(step.median_s):
        return False, "no measurement"
    limit = min(baseline.median_s * RISE_FACTOR, baseline.median_s + RISE_SECONDS)
    if step.median_s > limit:
        return False, f"median {step.median_s:.2f} s > {limit:.2f} s"
    if step.kept_up < KEPT_UP:
        return False, f"a stream produced only {step.kept_up:.2f} s of media per second"
    return True, "ok"


def concurrency(args: argparse.Namespace) -> tuple[list[CaseResult], dict[str, Any]]:
    geometry = Geometry(SMALL[0], SMALL[1])
    gop = max(1, round(FPS * args.segment_seconds))
    steps = stream_steps(args.max_streams)
    results: list[CaseResult] = []
    verdict: dict[str, Any] = {"counts": steps, "held": 0, "stopped_because": None}
    with tempfile.TemporaryDirectory(prefix="latency-filler-") as tmp:
        filler = Path(tmp) / "filler.flv"
        if steps[-1] > 1:
            make_filler(filler, geometry, SMALL[2], gop, args.step_duration + 90)
        with stagecast_target(args, ladder="[]", streams=steps[-1]) as target:
            for count in steps:
                step = run_case(
                    target, f"concurrency {count}", SMALL, args,
                    streams=count, filler=filler, duration=args.step_duration,
                )  # fmt: skip
                results.append(step)
                held, why = step_holds(step, results[0])
                print(f"  {count} stream(s): {'holds' if held else 'does not hold'} ({why})")
                if not held:
                    verdict["stopped_because"] = f"{count} streams: {why}"
                    break
                verdict["held"] = count
    return results, verdict


# --- output -------------------------------------------------------------------------------

# (title, width, attribute, format)
COLUMNS_OUT = (
    ("case", 30, "case", "{}"),
    ("server", 10, "server", "{}"),
    ("source", 8, "source", "{}"),
    ("renditions", 24, "renditions", "{}"),
    ("streams", 7, "streams", "{}"),
    ("players", 7, "players", "{}"),
    ("frames", 6, "frames", "{}"),
    ("unread", 6, "unreadable", "{}"),
    ("start s", 7, "start_s", "{:.2f}"),
    ("median s", 8, "median_s", "{:.2f}"),
    ("p95 s", 6, "p95_s", "{:.2f}"),
    ("stalls", 6, "stalls", "{}"),
    ("cpu s/stream-s", 14, "cpu_per_stream_s", "{:.3f}"),
    ("ffmpeg", 6, "ffmpeg_cpu_per_stream_s", "{:.3f}"),
    ("machine", 7, "machine_busy_pct", "{:.0f}%"),
)


def cell(result: CaseResult, key: str, fmt: str) -> str:
    value = getattr(result, key)
    if key == "renditions":
        return "+".join(value) if value else "-"
    return fmt.format(value)


def table(results: list[CaseResult]) -> str:
    def line(cells: list[str]) -> str:
        return "  ".join(
            text.ljust(width) if i < 4 else text.rjust(width)
            for i, (text, (_, width, _, _)) in enumerate(zip(cells, COLUMNS_OUT, strict=True))
        )

    header = line([title for title, _, _, _ in COLUMNS_OUT])
    rows = [line([cell(r, key, fmt) for _, _, key, fmt in COLUMNS_OUT]) for r in results]
    return "\n".join([header, "-" * len(header), *rows])


def goal(results: list[CaseResult], segment_seconds: float) -> dict[str, Any]:
    """Stagecast's median under 4 s (with 1 s segments) and below nginx-rtmp's."""
    ours = next((r for r in results if r.case == "latency" and r.server == "stagecast"), None)
    theirs = next((r for r in results if r.case == "latency" and r.server == "nginx-rtmp"), None)
    verdict: dict[str, Any] = {"segment_seconds": segment_seconds, "limit_s": GOAL_MEDIAN_S}
    if ours is None or math.isnan(ours.median_s):
        return {**verdict, "met": None, "why": "no Stagecast latency measured"}
    verdict["stagecast_median_s"] = ours.median_s
    verdict["under_limit"] = ours.median_s < GOAL_MEDIAN_S
    if theirs is None or math.isnan(theirs.median_s):
        return {**verdict, "met": None, "why": "no nginx-rtmp latency measured"}
    verdict["nginx_median_s"] = theirs.median_s
    verdict["below_nginx"] = ours.median_s < theirs.median_s
    verdict["met"] = verdict["under_limit"] and verdict["below_nginx"]
    return verdict


def describe_goal(verdict: dict[str, Any]) -> str:
    title = (
        f"Goal (median under {GOAL_MEDIAN_S:g} s with 1 s segments, and below nginx-rtmp; "
        f"measured with {verdict['segment_seconds']:g} s segments): "
    )
    lines = []
    if "stagecast_median_s" in verdict:
        ok = "ok" if verdict["under_limit"] else "over"
        lines.append(
            f"  Stagecast median {verdict['stagecast_median_s']:.2f} s vs limit "
            f"{GOAL_MEDIAN_S:g} s -> {ok}"
        )
    if "nginx_median_s" in verdict:
        difference = verdict["nginx_median_s"] - verdict["stagecast_median_s"]
        ok = "ok" if verdict["below_nginx"] else "not below"
        lines.append(
            f"  nginx-rtmp median {verdict['nginx_median_s']:.2f} s: Stagecast "
            f"{abs(difference):.2f} s {'lower' if difference > 0 else 'higher'} -> {ok}"
        )
    if verdict["met"] is None:
        return "\n".join([title + f"not evaluated ({verdict['why']})", *lines])
    return "\n".join([title + ("MET" if verdict["met"] else "NOT MET"), *lines])


def describe_concurrency(verdict: dict[str, Any], steps: list[CaseResult]) -> str:
    if not steps:
        return "Concurrency: not run"
    base = steps[0].median_s
    lines = [
        f"Concurrent passthrough streams one process holds (median within +{RISE_FACTOR - 1:.0%} "
        f"and +{RISE_SECONDS:g} s of one stream's {base:.2f} s, every stream >= {KEPT_UP:.0%} "
        f"real time): {verdict['held']} of the {verdict['counts'][-1]} tried"
    ]
    if verdict["stopped_because"]:
        lines.append(f"  stopped at {verdict['stopped_because']}")
    for step in steps:
        lines.append(
            f"  {step.streams:2d} streams: median {step.median_s:.2f} s, p95 {step.p95_s:.2f} s, "
            f"stalls {step.stalls}, slowest stream {step.kept_up:.2f} s/s, server cpu "
            f"{100 * step.cpu_per_stream_s * step.streams:.0f}% of a core, machine "
            f"{step.machine_busy_pct:.0f}% busy"
        )
    return "\n".join(lines)


def tool_version(command: list[str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        command, capture_output=True, text=True, check=False
    )
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine(nginx: str | None) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ffmpeg": tool_version([ffmpeg_path(), "-version"]).partition(" Copyright")[0],
        "nginx": tool_version([nginx, "-v"]) if nginx else None,
        "stagecast": source_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(document: dict[str, Any]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(document, indent=2) + "\n")


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Glass-to-glass latency: Stagecast and nginx-rtmp")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per case")
    parser.add_argument("--only", choices=["stagecast", "nginx"], help="run one server only")
    parser.add_argument("--segment-seconds", type=float, default=1.0)
    parser.add_argument("--skip-cpu", action="store_true", help="no 720p passthrough/ladder rows")
    parser.add_argument(
        "--skip-plain", action="store_true", help="no Stagecast row with Low-Latency HLS off"
    )
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--max-streams", type=int, default=8)
    parser.add_argument("--step-duration", type=float, default=20.0, help="seconds per step")
    parser.add_argument("--watch", type=float, default=8.0, help="seconds each player watches")
    parser.add_argument("--join-every", type=float, default=1.3, help="seconds between joins")
    parser.add_argument(
        "--skip-long-gop", action="store_true", help=f"no rows with -g {OBS_DEFAULT_GOP}"
    )
    parser.add_argument(
        "--only-long-gop",
        action="store_true",
        help=f"only the rows with -g {OBS_DEFAULT_GOP} (and their CPU rows unless --skip-cpu)",
    )
    parser.add_argument("--skip-browser", action="store_true", help="no hls.js-in-Chromium rows")
    parser.add_argument(
        "--browser-watch", type=float, default=20.0, help="seconds each page watches"
    )
    parser.add_argument(
        "--browser-join-every", type=float, default=5.0, help="seconds between page joins"
    )
    args = parser.parse_args(argv)
    if args.max_streams < 1 or args.duration <= 0 or args.step_duration <= 0:
        parser.error("--max-streams, --duration and --step-duration must be positive")
    return args


def long_gop_cases(args: argparse.Namespace, browser: bool) -> list[CaseResult]:
    """A source with OBS's default keyframe interval: passed through as it is (re-encoding
    off), and with its top rendition re-encoded (the default); the model players, hls.js in
    Chromium, the model players with Low-Latency HLS off, and what both cost at 720p."""
    results = []
    for reencode, how in ((False, "passthrough"), (True, "re-encoded")):
        with stagecast_target(args, ladder="[]", streams=1, reencode_long_gops=reencode) as target:
            name = f"-g {OBS_DEFAULT_GOP} {how}"
            results.append(run_case(target, name, SMALL, args, gop=OBS_DEFAULT_GOP))
            if browser:
                results.append(
                    run_case(
                        target, f"{name}, hls.js", SMALL, args, gop=OBS_DEFAULT_GOP, browser=True
                    )
                )
        if not args.skip_plain:  # players without Low-Latency HLS (VLC, ffplay, older ones)
            with stagecast_target(
                args, ladder="[]", streams=1, low_latency=False, reencode_long_gops=reencode
            ) as target:
                name = f"-g {OBS_DEFAULT_GOP} {how}, plain HLS"
                results.append(run_case(target, name, SMALL, args, gop=OBS_DEFAULT_GOP))
    if not args.skip_cpu:
        for reencode, how in ((False, "passthrough"), (True, "re-encoded")):
            with stagecast_target(
                args, ladder="[]", streams=1, reencode_long_gops=reencode
            ) as target:
                results.append(
                    run_case(
                        target, f"cpu -g {OBS_DEFAULT_GOP} {how}", LARGE, args, gop=OBS_DEFAULT_GOP
                    )
                )
    return results


def run(args: argparse.Namespace, build: tuple[str, str, str] | None) -> dict[str, Any]:
    results: list[CaseResult] = []
    browser = not args.skip_browser and hlsjs.missing() is None
    if not args.skip_browser and not browser:
        print(f"no hls.js-in-Chromium rows: {hlsjs.missing()}\n")
    if args.only_long_gop:
        return {"results": long_gop_cases(args, browser), "steps": [], "concurrency": {}}
    if args.only != "nginx":
        with stagecast_target(args, ladder="[]", streams=1) as target:
            results.append(run_case(target, "latency", SMALL, args))
            if browser:
                results.append(run_case(target, "latency, hls.js", SMALL, args, browser=True))
        if not args.skip_plain:
            with stagecast_target(args, ladder="[]", streams=1, low_latency=False) as target:
                results.append(run_case(target, "latency, plain HLS", SMALL, args))
    if args.only != "stagecast" and build is not None:
        with nginx_target(args, build) as target:
            results.append(run_case(target, "latency", SMALL, args))
    if args.only != "nginx" and not args.skip_cpu:
        with stagecast_target(args, ladder="[]", streams=1) as target:
            results.append(run_case(target, "cpu passthrough", LARGE, args))
        with stagecast_target(args, ladder="[720,480,360]", streams=1) as target:
            results.append(run_case(target, "cpu ladder", LARGE, args))
    if args.only != "nginx" and not args.skip_long_gop:
        results += long_gop_cases(args, browser)
    steps: list[CaseResult] = []
    sweep: dict[str, Any] = {}
    if args.only != "nginx" and not args.skip_concurrency:
        steps, sweep = concurrency(args)
    return {"results": results, "steps": steps, "concurrency": sweep}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    build = None
    if args.only != "stagecast":
        build = nginx_build()
        if build is None:
            print(f"nginx with the RTMP module is missing; install it with:\n  {NGINX_INSTALL}")
            print("(or run with --only stagecast)")
            return 2
    info = machine(build[0] if build else None)
    print(
        f"cores: {info['cores']} (usable {info['usable_cores']}); python {info['python']}; "
        f"{info['ffmpeg']}; {info['nginx']}; load average before {info['load_average']}"
    )
    print(f"stagecast source: {info['stagecast']}")
    print(
        f"publisher: timestamp pattern, {FPS} fps, x264 veryfast zerolatency, keyframe every "
        f"{args.segment_seconds:g} s, AAC; players join every {args.join_every:g} s and watch "
        f"{args.watch:g} s; {args.duration:g} s per case\n"
    )
    if info["load_average"][0] > 0.5 * info["usable_cores"]:
        print("warning: the machine is already busy; latencies will be inflated\n")
    outcome = run(args, build)
    results, steps = outcome["results"], outcome["steps"]
    verdict = goal(results, args.segment_seconds)
    print("\n" + table(results + steps) + "\n")
    print(describe_goal(verdict))
    if not args.skip_concurrency and args.only != "nginx" and not args.only_long_gop:
        print(describe_concurrency(outcome["concurrency"], steps))
    write_json(
        {
            "benchmark": "latency",
            "machine": info,
            "settings": vars(args),
            "results": [asdict(r) for r in results],
            "concurrency": {**outcome["concurrency"], "steps": [asdict(s) for s in steps]},
            "goal": verdict,
        }
    )
    print(f"\nload average after: {[round(x, 2) for x in os.getloadavg()]}")
    print(f"JSON: {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
