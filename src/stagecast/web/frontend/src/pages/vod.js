// A past broadcast: the recording in the same player, resumed where the viewer stopped (and
// saved as it plays), its chat replayed in step with the video, seek previews on the seek bar,
// and the channel's other recordings.
import { del, get, patch, post } from "../api.js";
import { accessToken, currentUser } from "../auth.js";
import { h, replace, confirmButton, formatDuration, formatDate, toast } from "../dom.js";
import { createPlayer } from "../player.js";
import { grid, vodCard } from "../cards.js";
import { badges, fragmentNode } from "../chat.js";
import { clipButton, vodClipSource } from "../clips.js";
import { reportButton } from "../report.js";

const SAVE_EVERY_S = 10; // of playback
const REPLAY_WINDOW_S = 60; // chat fetched ahead of the playhead
const REPLAY_BEHIND_S = 30; // shown from before the playhead after a seek
const REPLAY_PAGE = 100;
const PREVIEW_POLLS = 10;
const RESUME_IF_LEFT_S = 3; // a recording watched to its last seconds starts again
const VISIBILITIES = [
  ["public", "Everyone"],
  ["subscribers", "Subscribers"],
  ["private", "Only me"],
];

export async function render({ main, params, navigate }) {
  const me = currentUser();
  let token = me ? await accessToken() : null;
  const vodId = encodeURIComponent(params[0]);
  let vod = await get(`vods/${vodId}`);
  const [channel, others, progress] = await Promise.all([
    get(`channels/${vod.channel_id}`),
    get(`channels/${vod.channel_id}/vods`, { limit: 12 }),
    me ? get(`vods/${vodId}/progress`) : null,
  ]);
  document.title = `${vod.title} · ${channel.name} · Stagecast`;
  const player = createPlayer({ label: `Recording: ${vod.title}` });
  const video = player.video;
  // Playlists and segments of a recording that is not public need the viewer's token.
  const headers = () => (vod.visibility !== "public" && token ? { Authorization: `Bearer ${token}` } : {});
  const tokenTimer = me ? setInterval(async () => { token = await accessToken(); }, 60_000) : null;

  const replay = createReplay(vodId, video);
  const seek = createSeekBar(video, vod.duration_seconds, headers);
  const resumeAt = progress && progress.position_seconds < vod.duration_seconds - RESUME_IF_LEFT_S
    ? progress.position_seconds
    : 0;
  const saver = me ? createProgressSaver(vodId, video, resumeAt, vod.duration_seconds) : null;
  const clipper = clipButton({ video, source: vodClipSource(vod.id) });

  replace(
    main,
    h(
      "section",
      { class: "page vod-page" },
      h(
        "div",
        { class: "channel-layout" },
        h(
          "div",
          { class: "channel-main" },
          player.element,
          seek.element,
          h("div", { class: "clip-bar" }, clipper.button),
          clipper.editor,
          h("h1", {}, vod.title),
          h(
            "p",
            { class: "muted" },
            h("a", { href: `/${channel.slug}` }, channel.name),
            ` · ${formatDate(vod.created_at)} · ${formatDuration(vod.duration_seconds)}`,
            resumeAt ? h("span", { class: "resumed" }, ` · resumed at ${formatDuration(resumeAt)}`) : null,
          ),
          me && me.id === channel.owner.id
            ? ownerControls(vod, channel, navigate)
            : h("div", { class: "channel-actions" },
                reportButton(() => [{ content_type: "vod", content_id: vod.id, label: "this recording" }])),
        ),
        replay.element,
      ),
      h("h2", {}, "More from this channel"),
      grid(others.data.filter((v) => v.id !== vod.id).map(vodCard), "No other recordings."),
    ),
  );
  player.load(vod.playlist_url, { startPosition: resumeAt || -1, headers });

  // Seek previews: made by the server's job for new recordings; older ones are asked for.
  let previewTimer = null;
  async function loadPreviews(polls = 0) {
    if (vod.previews_url) {
      seek.setPreviews(vod.previews_url, vod.preview_sprite_url);
      return;
    }
    if (polls === 0) await post(`vods/${vodId}/previews`).catch(() => {});
    if (polls >= PREVIEW_POLLS) return;
    previewTimer = setTimeout(async () => {
      vod = await get(`vods/${vodId}`).catch(() => vod);
      loadPreviews(polls + 1);
    }, 2000);
  }
  loadPreviews();

  return () => {
    clearTimeout(previewTimer);
    clearInterval(tokenTimer);
    saver?.stop();
    replay.stop();
    seek.stop();
    player.destroy();
  };
}

/** The owner's controls: who may watch, and deleting the recording. */
function ownerControls(vod, channel, navigate) {
  const visibility = h(
    "select",
    { name: "visibility", "aria-label": "Who can watch" },
    VISIBILITIES.map(([value, label]) => h("option", { value, selected: value === vod.visibility }, label)),
  );
  visibility.addEventListener("change", async () => {
    try {
      const changed = await patch(`vods/${vod.id}`, { visibility: visibility.value });
      vod.visibility = changed.visibility;
      toast(`Who can watch: ${VISIBILITIES.find(([v]) => v === changed.visibility)[1]}`);
    } catch (error) {
      visibility.value = vod.visibility;
      toast(error.message, "error");
    }
  });
  const remove = confirmButton("Delete recording", "Delete for good", async () => {
    try {
      await del(`vods/${vod.id}`);
      toast("The recording was deleted");
      navigate(`/${channel.slug}`);
    } catch (error) {
      toast(error.message, "error");
    }
  });
  return h("div", { class: "channel-actions vod-owner" }, h("label", {}, "Who can watch ", visibility), remove);
}

/** Save the playhead: every SAVE_EVERY_S seconds of playback, on pause, seek and leaving. */
function createProgressSaver(vodId, video, resumeAt, duration) {
  let lastSaved = resumeAt;
  let stopped = false;
  function save() {
    if (stopped || !Number.isFinite(video.currentTime)) return;
    // The media may run a frame past the recorded duration, which the server would refuse.
    const position = Math.min(duration, Math.max(0, video.currentTime));
    if (Math.abs(position - lastSaved) < 0.5) return;
    lastSaved = position;
    post(`vods/${vodId}/progress`, { position_seconds: Math.round(position * 1000) / 1000 }).catch(() => {});
  }
  const onTime = () => {
    if (Math.abs(video.currentTime - lastSaved) >= SAVE_EVERY_S) save();
  };
  video.addEventListener("timeupdate", onTime);
  video.addEventListener("pause", save);
  video.addEventListener("seeked", save);
  window.addEventListener("pagehide", save);
  return {
    stop() {
      save();
      stopped = true;
      video.removeEventListener("timeupdate", onTime);
      video.removeEventListener("pause", save);
      video.removeEventListener("seeked", save);
      window.removeEventListener("pagehide", save);
    },
  };
}

/** The stream's chat, each message shown when the video reaches its offset. */
function createReplay(vodId, video) {
  const log = h("ol", { class: "chat-log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Chat replay" });
  const element = h("aside", { class: "chat replay", "aria-label": "Chat replay" }, h("h2", { class: "chat-title" }, "Chat replay"), log);
  let pending = []; // fetched, not shown yet, by offset
  let fetchedTo = -1; // seconds of the recording fetched so far
  let fetching = null;
  let generation = 0; // a seek starts a new one: answers for an older one are dropped

  async function fetchWindow(from, to) {
    const wanted = generation;
    let cursor = null;
    do {
      const page = await get(`vods/${vodId}/chat`, { from, to, limit: REPLAY_PAGE, cursor });
      if (wanted !== generation) return;
      pending.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor);
    fetchedTo = to;
  }

  function ensureFetched(now) {
    if (fetching || now + REPLAY_WINDOW_S / 2 < fetchedTo) return;
    const from = Math.max(0, fetchedTo);
    fetching = fetchWindow(from, from + REPLAY_WINDOW_S).catch(() => {}).finally(() => { fetching = null; });
  }

  function messageItem(message) {
    return h(
      "li",
      { class: "chat-message", dataset: { messageId: message.id, offset: String(message.offset_seconds) } },
      h("span", { class: "chat-time muted" }, formatDuration(message.offset_seconds), " "),
      badges(message.author.badges),
      h("strong", { class: "chat-author" }, message.author.display_name || message.author.username),
      ": ",
      h("span", { class: "chat-body" }, message.fragments?.length ? message.fragments.map(fragmentNode) : message.body),
    );
  }

  function show() {
    const now = video.currentTime;
    ensureFetched(now);
    const due = pending.filter((m) => m.offset_seconds <= now);
    if (!due.length) return;
    pending = pending.filter((m) => m.offset_seconds > now);
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    for (const message of due) {
      if (!log.querySelector(`[data-message-id="${CSS.escape(message.id)}"]`)) log.append(messageItem(message));
    }
    while (log.children.length > 200) log.firstChild.remove();
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  function restart() {
    generation += 1;
    pending = [];
    fetching = null;
    log.replaceChildren();
    fetchedTo = Math.max(0, video.currentTime - REPLAY_BEHIND_S);
    ensureFetched(video.currentTime);
  }

  video.addEventListener("timeupdate", show);
  video.addEventListener("seeking", restart);
  restart();
  return {
    element,
    stop() {
      generation += 1;
      video.removeEventListener("timeupdate", show);
      video.removeEventListener("seeking", restart);
    },
  };
}

/** A seek bar under the player; hovering it shows the thumbnail of that moment. */
function createSeekBar(video, duration, headers) {
  const bar = h("input", { type: "range", class: "seek", min: "0", max: String(duration), step: "0.1", value: "0", "aria-label": "Seek" });
  const thumb = h("div", { class: "seek-thumb" });
  const time = h("span", { class: "seek-time" });
  const preview = h("div", { class: "seek-preview", hidden: true }, thumb, time);
  const element = h("div", { class: "seek-bar" }, bar, preview);
  let cues = [];
  let spriteUrl = null;
  let dragging = false;

  const onTime = () => {
    if (!dragging) bar.value = String(video.currentTime);
  };
  video.addEventListener("timeupdate", onTime);
  bar.addEventListener("input", () => {
    dragging = true;
  });
  bar.addEventListener("change", () => {
    dragging = false;
    video.currentTime = Number(bar.value);
  });
  bar.addEventListener("pointermove", (event) => {
    const box = bar.getBoundingClientRect();
    const at = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * duration;
    time.textContent = formatDuration(at);
    const cue = cues.find((c) => at >= c.start && at < c.end) || cues[cues.length - 1];
    if (cue && spriteUrl) {
      Object.assign(thumb.style, {
        width: `${cue.w}px`,
        height: `${cue.h}px`,
        backgroundImage: `url("${spriteUrl}")`,
        backgroundPosition: `-${cue.x}px -${cue.y}px`,
      });
      thumb.dataset.cue = `${cue.x},${cue.y}`;
    }
    preview.style.left = `${Math.min(box.width - 80, Math.max(0, event.clientX - box.left - 80))}px`;
    preview.hidden = false;
  });
  bar.addEventListener("pointerleave", () => {
    preview.hidden = true;
  });

  async function fetchWithHeaders(url) {
    const response = await fetch(url, { headers: headers(), credentials: "same-origin" });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response;
  }

  return {
    element,
    async setPreviews(trackUrl, sprite) {
      try {
        const [track, image] = await Promise.all([fetchWithHeaders(trackUrl), fetchWithHeaders(sprite)]);
        cues = parseCues(await track.text());
        spriteUrl = URL.createObjectURL(await image.blob());
        element.dataset.previews = String(cues.length);
      } catch {
        cues = [];
      }
    },
    stop() {
      video.removeEventListener("timeupdate", onTime);
      if (spriteUrl) URL.revokeObjectURL(spriteUrl);
    },
  };
}

function seconds(stamp) {
  const [h, m, s] = stamp.split(":");
  return Number(h) * 3600 + Number(m) * 60 + Number(s);
}

/** The cues of a seek-preview WebVTT track: times and the sprite region (#xywh=). */
export function parseCues(text) {
  const cues = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const timing = lines[i].match(/^(\S+) --> (\S+)/);
    const region = lines[i + 1]?.match(/#xywh=(\d+),(\d+),(\d+),(\d+)/);
    if (!timing || !region) continue;
    const [x, y, w, hgt] = region.slice(1).map(Number);
    cues.push({ start: seconds(timing[1]), end: seconds(timing[2]), x, y, w, h: hgt });
  }
  return cues;
}
