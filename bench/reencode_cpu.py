"""What re-encoding a long-GOP source's top rendition costs, beside passing it through.

A source with OBS's default keyframe interval (250 frames) gets its top rendition re-encoded
with a keyframe every segment (`STAGECAST_MEDIA_REENCODE_LONG_GOPS`, issue 13). This script
measures that ffmpeg's CPU: the same FLV (x264 veryfast at 2500 kb/s, `-g 250`, testsrc2 under
moving noise so that the encoder works as for a busy picture, AAC) is fed in real time
(`ffmpeg -re ... -c copy`) to the command line the pipeline builds (`plan_ladder` and
`build_ffmpeg_args`, Low-Latency HLS fragments and the thumbnail output included), once with
the top rendition passed through and once re-encoded, and the user + system CPU of that ffmpeg
process alone (`os.wait4`) is divided by the media seconds it read.

Usage
    .venv/bin/python bench/reencode_cpu.py [--size 1280x720] [--fps 30] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from stagecast.config import MediaSettings
from stagecast.media.ladder import RenditionOutput, ThumbnailOutput, build_ffmpeg_args
from stagecast.media.pipeline import SourceInfo, plan_ladder

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "reencode_cpu.json"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
BITRATE = 2_500_000
GOP = 250


def make_source(path: Path, width: int, height: int, fps: int, seconds: float) -> None:
    command = [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps},noise=alls=24:allf=t+u",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:g}", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0",
        "-b:v", str(BITRATE), "-maxrate", str(BITRATE), "-bufsize", str(BITRATE),
        "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True)  # noqa: S603 - our own fixed command line


def pipeline_command(work: Path, source: SourceInfo, settings: MediaSettings) -> list[str]:
    """The ffmpeg the pipeline would start for this source (ladder: the source alone)."""
    renditions = plan_ladder(source, [], reencode_long_gops=settings.reencode_long_gops)
    outputs = [RenditionOutput(r, str(work / f"{r.name}.mp4")) for r in renditions]
    return build_ffmpeg_args(
        FFMPEG,
        input_format="flv",
        outputs=outputs,
        audio_codec=source.audio_codec,
        segment_duration=settings.segment_seconds,
        fragment_duration=settings.part_seconds * 0.9,
        thumbnail=ThumbnailOutput(str(work / "thumbnail.jpg"), settings.thumbnail_seconds),
        loglevel="error",
    )


def measure(source_file: Path, command: list[str], seconds: float) -> dict[str, Any]:
    """Feed the file in real time; the pipeline ffmpeg's own CPU seconds per media second."""
    feeder = subprocess.Popen(  # noqa: S603 - our own fixed command line
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(source_file),
         "-c", "copy", "-f", "flv", "pipe:1"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    started = time.monotonic()
    pipeline = subprocess.Popen(command, stdin=feeder.stdout)  # noqa: S603 - fixed command line
    assert feeder.stdout is not None  # noqa: S101 - stdout=PIPE
    feeder.stdout.close()  # the pipeline holds its own end
    _, status, usage = os.wait4(pipeline.pid, 0)
    wall = time.monotonic() - started
    pipeline.returncode = os.waitstatus_to_exitcode(status)
    feeder.wait()
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "exit_code": pipeline.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_per_stream_s": round(cpu / seconds, 3),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    width, height = (int(x) for x in args.size.split("x"))
    print(f"cores: {os.cpu_count()}; load average before {[round(x, 2) for x in os.getloadavg()]}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="reencode-cpu-") as tmp:
        work = Path(tmp)
        source_file = work / "source.flv"
        make_source(source_file, width, height, args.fps, args.seconds)
        source = SourceInfo("h264", "aac", width, height, float(args.fps), BITRATE)
        for name, too_far in (("passthrough", False), ("re-encoded", True)):
            command = pipeline_command(
                work, replace(source, keyframes_too_far=too_far), MediaSettings()
            )
            result = {"mode": name, **measure(source_file, command, args.seconds)}
            rows.append(result)
            print(
                f"{name:12} cpu {result['cpu_s']:6.2f} s over {args.seconds:g} s of media: "
                f"{result['cpu_per_stream_s']:.3f} s per stream-second "
                f"(wall {result['wall_s']:.1f} s, exit {result['exit_code']}, "
                f"rss {result['max_rss_mb']} MB)",
                flush=True,
            )
    extra = rows[1]["cpu_per_stream_s"] - rows[0]["cpu_per_stream_s"]
    print(f"re-encoding the top rendition costs {extra:.3f} CPU s per stream-second more")
    print(f"load average after: {[round(x, 2) for x in os.getloadavg()]}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(
        json.dumps(
            {
                "benchmark": "reencode_cpu",
                "settings": vars(args) | {"bitrate": BITRATE, "gop": GOP},
                "load_average": list(os.getloadavg()),
                "results": rows,
                "extra_cpu_per_stream_s": round(extra, 3),
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
