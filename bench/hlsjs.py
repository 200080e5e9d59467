"""A real viewer for bench/latency.py: hls.js in Debian's Chromium, glass to glass.

The page is about:blank with one <video> and the hls.js light build the web app bundles
(src/stagecast/web/frontend/node_modules), configured as the web app's player is
(`lowLatencyMode: true, enableWorker: false, backBufferLength: 30`). Every frame Chromium
presents (`requestVideoFrameCallback`) is drawn to a canvas, the timestamp blocks are read at
the same sample points as the model players' (a CRC-8 guards every read), and its latency is
the wall time it was shown (`performance.timeOrigin + expectedDisplayTime`) minus the time in
it. A stall is a gap between two presented frames more than 50 ms over a frame's duration;
hls.js's own stall reports (`BUFFER_STALLED_ERROR`, each of which raises its target latency by
one second, up to a target duration) are counted beside.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
HLS_JS = BENCH_DIR.parent / "src/stagecast/web/frontend/node_modules/hls.js/dist/hls.light.min.js"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
]

PAGE = '<!doctype html><html><body style="margin:0"><video id="v" muted playsinline></video>'

WATCH = r"""
async ({src, width, band, points, watch, fps, stallReported}) => {
  const crc8 = (value) => {
    let crc = 0;
    for (const shift of [24, 16, 8, 0]) {
      crc ^= (value >>> shift) & 0xff;
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  };
  const video = document.getElementById("v");
  const canvas = new OffscreenCanvas(width, band);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const result = { latencies: [], unreadable: 0, stalls: 0, stallSeconds: 0, hlsStalls: 0,
                   first: null, errors: [], levels: [] };
  const hls = new Hls({ lowLatencyMode: true, enableWorker: false, backBufferLength: 30 });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) result.hlsStalls += 1;
    else if (data.fatal) result.errors.push(`${data.type}: ${data.details}`);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.play().catch((error) => result.errors.push(String(error)));
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  let previous = null;
  const onFrame = (_now, metadata) => {
    const shown = performance.timeOrigin + metadata.expectedDisplayTime;
    if (previous !== null) {
      const gap = (shown - previous) / 1000 - 1 / fps;
      if (gap > stallReported) { result.stalls += 1; result.stallSeconds += gap; }
    }
    previous = shown;
    if (result.first === null) result.first = shown;
    context.drawImage(video, 0, 0, width, video.videoHeight * width / video.videoWidth);
    const pixels = context.getImageData(0, 0, width, band).data;
    let word = 0n;
    for (const offsets of points) {
      let level = 0;
      for (const offset of offsets) level += pixels[offset * 4];
      word = (word << 1n) | (level > 128 * offsets.length ? 1n : 0n);
    }
    const value = Number(word >> 8n), check = Number(word & 0xffn);
    if (crc8(value) !== check) result.unreadable += 1;
    else {
      const modulus = 2 ** 32;
      const sent = shown - (((Math.floor(shown) - value) % modulus) + modulus) % modulus;
      result.latencies.push((shown - sent) / 1000);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  await new Promise((resolve) => setTimeout(resolve, watch * 1000));
  result.targetLatency = hls.targetLatency;
  result.level = hls.levels[hls.currentLevel]?.height ?? null;
  hls.destroy();
  return result;
}
"""


def missing() -> str | None:
    """Why the hls.js player cannot run here, or None."""
    try:
        import playwright  # noqa: F401, PLC0415 - optional: only this player needs it
    except ImportError:
        return "Playwright for Python is not installed (.venv/bin/pip install playwright)"
    if not CHROMIUM.exists():
        return "Debian's Chromium is missing (apt-get install -y chromium)"
    if not HLS_JS.exists():
        return "hls.js is not installed (make web runs npm ci)"
    return None


async def watch_streams(
    url: str,
    *,
    width: int,
    band: int,
    points: Sequence[Sequence[int]],
    joins: Sequence[float],
    watch: float,
    fps: int,
    stall_reported: float,
) -> list[dict[str, Any]]:
    """One Chromium; a fresh page joins `url` at each of `joins` (seconds from now) and
    watches for `watch` seconds. Returns what each page saw, with `joined` (wall time)."""
    from playwright.async_api import async_playwright  # noqa: PLC0415 - optional dependency

    script = HLS_JS.read_text()
    origin = time.time()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )

        async def viewer(delay: float) -> dict[str, Any]:
            await asyncio.sleep(max(0.0, origin + delay - time.time()))
            context = await browser.new_context()
            page = await context.new_page()
            try:
                await page.set_content(PAGE)
                await page.add_script_tag(content=script)
                joined = time.time()
                seen: dict[str, Any] = await page.evaluate(
                    WATCH,
                    {
                        "src": url,
                        "width": width,
                        "band": band,
                        "points": [list(p) for p in points],
                        "watch": watch,
                        "fps": fps,
                        "stallReported": stall_reported,
                    },
                )
            finally:
                await context.close()
            seen["joined"] = joined
            return seen

        try:
            return list(await asyncio.gather(*(viewer(delay) for delay in joins)))
        finally:
            await browser.close()
