// Go live: where to point OBS (server and key: copy, reveal, regenerate), the stream's
// title and category, and going live from this browser with the camera or the screen.
import { get, post, patch } from "../api.js";
import { h, replace, field, copyButton, errorBox, toast, formatNumber } from "../dom.js";
import { openSocket } from "../realtime.js";
import { streamHealthNotice } from "../streamhealth.js";
import { createChat } from "../chat.js";
import { requireUser } from "../signin.js";
import { captureMedia, createBroadcast, supportedMimeType } from "../broadcaster.js";

const MASK = "•".repeat(24);

export async function render({ main, navigate }) {
  const me = requireUser(navigate);
  if (!me) return;
  document.title = "Go live · Stagecast";
  let key = await get("live/streams/me/key");
  let channel = await get(`channels/${key.channel_id}`);
  const [settings, categories] = await Promise.all([
    get(`channels/${channel.id}/settings`),
    get("categories", { limit: 100 }),
  ]);
  let liveStream = channel.live_stream_id ? await get(`streams/${channel.live_stream_id}`) : null;

  // --- where to send media ----------------------------------------------------------------
  let revealed = false;
  const keyText = h("code", { class: "secret", id: "stream-key" }, MASK);
  const reveal = h("button", { type: "button", class: "button small", "aria-controls": "stream-key", "aria-pressed": "false" }, "Reveal");
  const showKey = () => {
    keyText.textContent = revealed ? key.stream_key : MASK;
    reveal.textContent = revealed ? "Hide" : "Reveal";
    reveal.setAttribute("aria-pressed", String(revealed));
  };
  reveal.addEventListener("click", () => {
    revealed = !revealed;
    showKey();
  });
  const regenerate = h("button", { type: "button", class: "button small danger" }, "Regenerate");
  regenerate.addEventListener("click", async () => {
    if (!confirm("Make a new stream key? The old one stops working at once, and a broadcast using it is cut off.")) return;
    try {
      key = await post("live/streams/me/key/regenerate");
      showKey();
      toast("New stream key made; update OBS with it");
    } catch (error) {
      toast(error.message, "error");
    }
  });
  const serverText = h("code", {}, key.rtmp_server);
  const setup = h(
    "section",
    { class: "panel", "aria-labelledby": "obs-title" },
    h("h2", { id: "obs-title" }, "Stream from OBS or ffmpeg"),
    h("dl", { class: "key-list" },
      h("dt", {}, "Server"),
      h("dd", {}, serverText, copyButton(() => key.rtmp_server, "Copy server")),
      h("dt", {}, "Stream key"),
      h("dd", {}, keyText, reveal, copyButton(() => key.stream_key, "Copy key"), regenerate),
    ),
    h("p", { class: "muted", id: "encoder-advice" },
      `OBS: Settings → Stream → Service: Custom; Settings → Output → Keyframe Interval ${key.encoder.keyframe_interval_seconds} s ` +
      "(OBS's “0 = auto” puts keyframes about 8 s apart, too far for low latency). " +
      "Keep the key secret: anyone with it can stream as you."),
  );

  // --- title and category ------------------------------------------------------------------
  const titleInput = h("input", { name: "title", maxlength: 140, required: true, value: liveStream ? liveStream.title : settings.title_template });
  const categorySelect = h("select", { name: "category" },
    h("option", { value: "" }, "No category"),
    categories.data.map((c) => h("option", { value: c.slug }, c.name)));
  categorySelect.value = (liveStream ? liveStream.category : settings.category) || "";
  const infoErrors = h("div");
  const infoHint = h("small", { class: "muted" });
  const showInfoHint = () => {
    infoHint.textContent = liveStream
      ? "You are live: changes show to viewers at once."
      : "Used for your next broadcast. {channel} becomes your channel's name.";
  };
  showInfoHint();
  const info = h(
    "form",
    {
      class: "panel stack",
      "aria-labelledby": "info-title",
      onsubmit: async (event) => {
        event.preventDefault();
        replace(infoErrors);
        try {
          const category = categorySelect.value || null;
          if (liveStream) {
            liveStream = await patch(`streams/${liveStream.id}`, { title: titleInput.value, category });
          } else {
            const body = { title_template: titleInput.value };
            if (category) body.category = category;
            await patch(`channels/${channel.id}/settings`, body);
          }
          toast("Saved");
        } catch (error) {
          replace(infoErrors, errorBox(error));
        }
      },
    },
    h("h2", { id: "info-title" }, "Stream info"),
    field("Title", titleInput),
    infoHint,
    field("Category", categorySelect),
    infoErrors,
    h("button", { type: "submit", class: "button" }, "Save"),
  );

  // --- the browser broadcaster -------------------------------------------------------------
  const live = openSocket();
  const health = streamHealthNotice(live, key.stream_health);
  const chat = createChat({ live, channel, me, canModerate: true });
  const preview = h("video", { class: "video preview", muted: true, autoplay: true, playsinline: true, hidden: true, "aria-label": "Your camera preview" });
  preview.muted = true;
  const status = h("p", { class: "broadcast-status", role: "status", "aria-live": "polite" }, "Off air");
  const viewers = h("span", { class: "viewer-count" });
  const cameraChoice = h("input", { type: "radio", name: "source", value: "camera", checked: true });
  const screenChoice = h("input", { type: "radio", name: "source", value: "screen" });
  const goLive = h("button", { type: "button", class: "button primary" }, "Go live from this browser");
  const endButton = h("button", { type: "button", class: "button danger", hidden: true }, "End stream");
  const watchLink = h("a", { href: `/${channel.slug}`, hidden: true }, "Open your channel page");
  let broadcast = null;

  function setStatus(state, detail) {
    status.dataset.state = state;
    const text = {
      idle: "Off air",
      capturing: "Asking for your camera or screen…",
      starting: "Connecting…",
      live: "● LIVE",
      ended: detail ? `Stream ended: ${detail}` : "Stream ended",
      error: `Stopped: ${detail}`,
    }[state];
    status.textContent = text;
    const onAir = state === "starting" || state === "live" || state === "capturing";
    goLive.hidden = onAir;
    endButton.hidden = !onAir;
    watchLink.hidden = state !== "live";
    preview.hidden = !onAir;
    if (!onAir) {
      preview.srcObject = null;
      broadcast = null;
    }
  }

  if (!supportedMimeType() || !navigator.mediaDevices) {
    goLive.disabled = true;
    status.textContent = window.isSecureContext
      ? "This browser cannot record WebM video; use OBS, or Chrome, Edge or Firefox."
      : "Going live from the browser needs HTTPS (or localhost).";
  }

  goLive.addEventListener("click", async () => {
    setStatus("capturing");
    let media;
    try {
      media = await captureMedia(screenChoice.checked ? "screen" : "camera");
    } catch (error) {
      setStatus("error", error.name === "NotAllowedError" ? "access to the camera or screen was refused" : error.message);
      return;
    }
    preview.srcObject = media;
    broadcast = createBroadcast({ live, media, userId: me.id, onStatus: setStatus });
    try {
      await broadcast.start();
    } catch (error) {
      for (const track of media.getTracks()) track.stop();
      setStatus("error", error.message);
    }
  });
  endButton.addEventListener("click", async () => {
    endButton.disabled = true;
    await broadcast?.stop();
    endButton.disabled = false;
    setStatus("ended");
  });

  let streamIsLive = Boolean(liveStream);
  const showViewers = (count) => (viewers.textContent = streamIsLive ? `${formatNumber(count)} watching` : "");
  live.socket.on("connect", () => live.call("stream:join", { channelId: channel.id }).then((j) => showViewers(j.viewer_count)).catch(() => null));
  live.on("viewers:updated", (p) => showViewers(p.viewer_count));
  live.on("stream:started", async (p) => {
    streamIsLive = true;
    liveStream = await get(`streams/${p.stream_id}`).catch(() => null);
    showInfoHint();
    chat.loadHistory(p.stream_id);
  });
  live.on("stream:ended", () => {
    streamIsLive = false;
    showViewers(0);
    liveStream = null;
    showInfoHint();
  });

  const broadcaster = h(
    "section",
    { class: "panel", "aria-labelledby": "browser-title" },
    h("h2", { id: "browser-title" }, "Go live from this browser"),
    h("fieldset", { class: "choices" },
      h("legend", {}, "What to stream"),
      h("label", { class: "check" }, cameraChoice, " Camera and microphone"),
      h("label", { class: "check" }, screenChoice, " Screen (with its audio where the browser allows)"),
    ),
    preview,
    h("div", { class: "row" }, goLive, endButton, status, viewers),
    watchLink,
  );

  replace(
    main,
    h(
      "div",
      { class: "channel-layout" },
      h(
        "section",
        { class: "channel-main stack", "aria-labelledby": "golive-title" },
        h("h1", { id: "golive-title" }, "Go live"),
        h("p", { class: "muted" }, "Your channel: ", h("a", { href: `/${channel.slug}` }, `/${channel.slug}`)),
        health,
        broadcaster,
        info,
        setup,
      ),
      chat.element,
    ),
  );
  if (liveStream) {
    chat.loadHistory(liveStream.id);
    status.textContent = "● LIVE (from another source)";
  }

  return () => {
    broadcast?.stop();
    live.close();
  };
}
