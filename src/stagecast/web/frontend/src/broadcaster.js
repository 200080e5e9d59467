// Going live from the browser, seed 004's protocol over the page's Socket.IO connection:
// `start-stream`, one binary `stream-data` WebM chunk a second from MediaRecorder, and
// `end-stream`; the server answers `stream-started`, `stream-error` and `stream-ended`.

const MIME_TYPES = [
  "video/webm;codecs=vp8,opus",
  "video/webm;codecs=vp9,opus",
  "video/webm",
];
const CHUNK_MS = 1000;

export function supportedMimeType() {
  if (typeof MediaRecorder === "undefined") return null;
  return MIME_TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || null;
}

export async function captureMedia(source) {
  if (source === "screen") {
    return navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: true });
  }
  return navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
    audio: true,
  });
}

/**
 * Publish `media` (a MediaStream) as the signed-in user's channel.
 * `onStatus(state, detail)` hears "starting", "live", "ended" and "error".
 */
export function createBroadcast({ live, media, userId, onStatus }) {
  const mimeType = supportedMimeType();
  let recorder = null;
  let sending = Promise.resolve();
  let stopped = false;

  function fail(message) {
    if (stopped) return;
    stop({ tellServer: false });
    onStatus("error", message);
  }

  live.socket.on("stream-error", (payload) => fail(payload?.error || "The server refused the stream"));
  live.socket.on("stream-ended", (payload) => {
    if (stopped) return;
    stop({ tellServer: false });
    onStatus("ended", payload?.reason === "ended" ? null : payload?.reason);
  });

  async function start() {
    onStatus("starting");
    await live.call("start-stream", { userId });
    recorder = new MediaRecorder(media, { mimeType, videoBitsPerSecond: 2_500_000, audioBitsPerSecond: 128_000 });
    recorder.addEventListener("dataavailable", (event) => {
      if (!event.data || event.data.size === 0 || stopped) return;
      // Chunks are sent one after another, in the order they were recorded.
      const blob = event.data;
      sending = sending.then(async () => {
        if (stopped) return;
        try {
          const answer = await live.call("stream-data", { chunk: await blob.arrayBuffer() }, 20_000);
          if (answer.stream_id) onStatus("live", answer.stream_id);
        } catch (error) {
          fail(error.message);
        }
      });
    });
    recorder.start(CHUNK_MS);
  }

  function stop({ tellServer = true } = {}) {
    if (stopped) return sending;
    stopped = true;
    if (recorder && recorder.state !== "inactive") recorder.stop();
    for (const track of media.getTracks()) track.stop();
    live.socket.off("stream-error");
    live.socket.off("stream-ended");
    if (!tellServer) return sending;
    return sending.then(() => live.call("end-stream", {}).catch(() => null));
  }

  return { start, stop, mimeType };
}
