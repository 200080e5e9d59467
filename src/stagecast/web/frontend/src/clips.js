// Clips in the web app: the Clip button under a player (one click: the last 30 s), the small
// editor that follows (title, trim), and the clip cards of the lists.
import { post, patch } from "./api.js";
import { currentUser } from "./auth.js";
import { h, replace, errorBox, field, formatDuration, formatNumber, timeAgo } from "./dom.js";

const DEFAULT_SECONDS = 30;
const MIN_SECONDS = 5;

// How far behind the live edge the viewer is watching: the clip ends where they are.
function behindLiveEdge(video) {
  const ranges = video.seekable;
  if (!ranges || !ranges.length) return 0;
  return Math.max(0, ranges.end(ranges.length - 1) - video.currentTime - 1);
}

// `source()` answers the clip request's source: {stream_id} live, {vod_id, start} recorded.
export function clipButton({ video, source, onSaved = () => {} }) {
  const editor = h("div", { class: "clip-editor", hidden: true });
  const button = h("button", { type: "button", class: "button", "data-action": "clip" }, "✂ Clip");
  button.addEventListener("click", async () => {
    if (!currentUser()) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    button.disabled = true;
    try {
      const clip = await makeClip(source(video));
      showEditor(editor, clip, onSaved);
    } catch (error) {
      editor.hidden = false;
      replace(editor, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return { button, editor };
}

async function makeClip(body) {
  try {
    return await post("clips", { duration: DEFAULT_SECONDS, ...body });
  } catch (error) {
    // A stream younger than 30 s (or near the start of a recording): clip what there is.
    const p = error.problem;
    if (error.code !== "CLIP_RANGE_UNAVAILABLE" || p?.available_end === undefined) throw error;
    const end = p.available_end - (body.offset || 0);
    const start = body.start ?? Math.max(p.available_start, end - DEFAULT_SECONDS);
    const duration = Math.min(DEFAULT_SECONDS, end - start, p.available_end - start);
    if (duration < MIN_SECONDS) throw error;
    return post("clips", { ...body, duration: Math.floor(duration * 1000) / 1000 });
  }
}

export function liveClipSource(streamId) {
  return (video) => ({ stream_id: streamId, offset: Math.round(behindLiveEdge(video) * 1000) / 1000 });
}

const thousandths = (seconds) => Math.round(seconds * 1000) / 1000;

// On a recording: the 30 s that end where the viewer is (less near its start).
export function vodClipSource(vodId) {
  return (video) => {
    const end = Math.max(MIN_SECONDS, video.currentTime);
    const duration = Math.min(DEFAULT_SECONDS, end);
    return { vod_id: vodId, start: thousandths(end - duration), duration: thousandths(duration) };
  };
}

function showEditor(editor, clip, onSaved) {
  editor.hidden = false;
  const title = h("input", { name: "title", maxlength: 140, value: clip.title, required: true });
  const start = h("input", { type: "number", name: "start", min: 0, max: clip.original_duration, step: "any", value: clip.trim_start });
  const end = h("input", { type: "number", name: "end", min: 0, max: clip.original_duration, step: "any", value: clip.trim_start + clip.duration });
  const errors = h("div");
  const link = h("a", { href: clip.url, class: "button small", "data-clip-link": clip.id }, "Open the clip");
  const form = h(
    "form",
    {
      class: "clip-form",
      onsubmit: async (event) => {
        event.preventDefault();
        replace(errors);
        try {
          const saved = await patch(`clips/${clip.id}`, {
            title: title.value,
            start: Number(start.value),
            end: Number(end.value),
          });
          replace(errors, h("p", { class: "notice", role: "status" }, `Saved: ${formatDuration(saved.duration)}`));
          onSaved(saved);
        } catch (error) {
          replace(errors, errorBox(error));
        }
      },
    },
    h("p", { role: "status" }, "Clipped! It plays now; the MP4 follows in a few seconds."),
    field("Title", title),
    h("div", { class: "clip-trim" },
      field("Start (s)", start, `of ${clip.original_duration.toFixed(1)} s`),
      field("End (s)", end)),
    h("div", { class: "clip-form-actions" },
      h("button", { type: "submit", class: "button primary" }, "Save"),
      link),
    errors,
  );
  replace(editor, form);
}

export function clipCard(clip) {
  const href = clip.url;
  return h(
    "article",
    { class: "card", dataset: { clipId: clip.id } },
    h(
      "a",
      { href, class: "card-link", "aria-label": `Watch the clip: ${clip.title}` },
      h(
        "div",
        { class: "thumb-box" },
        clip.thumbnail_url
          ? h("img", { class: "thumb", src: clip.thumbnail_url, alt: "", loading: "lazy", width: 320, height: 180 })
          : h("div", { class: "thumb placeholder", "aria-hidden": "true" }, "✂"),
        h("span", { class: "badge viewers" }, formatDuration(clip.duration)),
      ),
    ),
    h(
      "div",
      { class: "card-body" },
      h("h3", { class: "card-title" }, h("a", { href }, clip.title)),
      h("p", { class: "muted" },
        h("a", { href: `/${clip.channel_slug}` }, clip.channel_slug),
        ` · ${formatNumber(clip.view_count)} views · ${formatNumber(clip.like_count)} likes · ${timeAgo(clip.created_at)}`),
    ),
  );
}
