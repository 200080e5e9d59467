// The player: hls.js in low-latency mode with a quality menu for the ABR ladder, or the
// browser's own HLS (Safari, iOS) where Media Source Extensions are missing. What it says
// over the picture (offline, reconnecting, ended) comes from the channel's live events,
// never from playback errors, which it retries quietly.
import { h } from "./dom.js";

const STATES = {
  loading: "Starting the stream…",
  offline: "Offline",
  reconnecting: "Reconnecting… the streamer's connection dropped",
  ended: "The stream has ended",
  playing: "",
};

// Fatal errors of the master playlist itself; hls.js names them in `data.details`.
const MANIFEST_ERRORS = new Set(["manifestLoadError", "manifestLoadTimeOut", "manifestParsingError"]);

export function createPlayer({ label = "Stream" } = {}) {
  const video = h("video", {
    class: "video",
    controls: true,
    playsinline: true,
    muted: true,
    autoplay: true,
    "aria-label": label,
  });
  video.muted = true; // autoplay is allowed muted; the viewer unmutes with the controls
  const overlay = h("div", { class: "player-state", role: "status", "aria-live": "polite" });
  const quality = h("select", { class: "quality", "aria-label": "Quality", disabled: true },
    h("option", { value: "-1" }, "Auto"));
  const element = h(
    "div",
    { class: "player", dataset: { state: "offline" } },
    video,
    overlay,
    h("div", { class: "player-bar" }, h("label", { class: "quality-label" }, "Quality ", quality)),
  );
  let hls = null;
  let source = null;
  let retry = null;
  let manifestFailures = 0;
  let destroyed = false;

  function setState(state) {
    element.dataset.state = state;
    overlay.textContent = STATES[state] ?? state;
    overlay.hidden = state === "playing";
  }

  function fillQualities() {
    const levels = hls.levels.map((level, index) => ({ level, index }));
    levels.sort((a, b) => (b.level.height || 0) - (a.level.height || 0));
    quality.replaceChildren(
      h("option", { value: "-1" }, "Auto"),
      ...levels.map(({ level, index }) =>
        h("option", { value: String(index) }, level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kb/s`),
      ),
    );
    quality.disabled = levels.length < 2;
  }

  quality.addEventListener("change", () => {
    if (hls) hls.currentLevel = Number(quality.value);
  });

  // `startPosition`: seconds to start at (a VOD's saved progress); `headers()`: request
  // headers for every playlist and segment (a VOD that is not public needs the viewer's token).
  let options = {};

  async function load(src, loadOptions = options) {
    options = loadOptions;
    if (src !== source) manifestFailures = 0;
    source = src;
    stop();
    setState("loading");
    video.addEventListener(
      "playing",
      () => {
        manifestFailures = 0;
        setState("playing");
      },
      { once: true },
    );
    // The light build: no subtitles, alternate audio or DRM, which Stagecast does not use.
    const { default: Hls } = await import("hls.js/light");
    if (destroyed || source !== src) return;
    if (Hls.isSupported()) {
      hls = new Hls({
        lowLatencyMode: true,
        // The page's Content-Security-Policy allows no blob: workers; transmuxing fMP4 is
        // light enough for the main thread.
        enableWorker: false,
        backBufferLength: 30,
        startPosition: options.startPosition ?? -1,
        xhrSetup(xhr) {
          for (const [name, value] of Object.entries(options.headers?.() || {})) xhr.setRequestHeader(name, value);
        },
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        fillQualities();
        video.play().catch(() => {});
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
        const level = hls.levels[data.level];
        const auto = quality.querySelector('option[value="-1"]');
        if (auto) auto.textContent = hls.autoLevelEnabled && level?.height ? `Auto (${level.height}p)` : "Auto";
      });
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        clearTimeout(retry);
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else if (MANIFEST_ERRORS.has(data.details)) {
          // startLoad() never asks for the master playlist again: a 404 before the first
          // segment (or on a node that does not have the stream yet) would end playback for
          // good. Load it anew, backing off, until the stream is stopped or ended.
          const wanted = src;
          const wait = Math.min(15_000, 1000 * 2 ** Math.min(manifestFailures, 4));
          manifestFailures += 1;
          retry = setTimeout(() => {
            if (!destroyed && source === wanted) load(wanted);
          }, wait);
        } else {
          retry = setTimeout(() => hls?.startLoad(), 2000);
        }
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;
      if (options.startPosition > 0) {
        video.addEventListener("loadedmetadata", () => { video.currentTime = options.startPosition; }, { once: true });
      }
      video.play().catch(() => {});
    } else {
      overlay.textContent = "This browser cannot play HLS video.";
      overlay.hidden = false;
    }
  }

  function stop() {
    clearTimeout(retry);
    if (hls) {
      hls.destroy();
      hls = null;
    }
    quality.disabled = true;
    if (video.getAttribute("src")) {
      video.removeAttribute("src");
      video.load();
    }
  }

  return {
    element,
    video,
    load,
    setState,
    stop(state) {
      source = null;
      stop();
      if (state) setState(state);
    },
    destroy() {
      destroyed = true;
      source = null;
      stop();
    },
  };
}
