// A clip: its player (HLS at once), likes, the share link and embed code, the MP4 download.
import { get, post, del } from "../api.js";
import { currentUser } from "../auth.js";
import { h, replace, copyButton, errorBox, formatDuration, formatNumber, timeAgo } from "../dom.js";
import { createPlayer } from "../player.js";
import { reportButton } from "../report.js";

export async function render({ main, params, embed = false }) {
  let clip = await get(`clips/${encodeURIComponent(params[0])}`);
  document.title = `${clip.title} · Stagecast`;
  const player = createPlayer({ label: `Clip: ${clip.title}` });
  // A view counts once the clip plays (the server counts one per viewer an hour).
  player.video.addEventListener("playing", () => post(`clips/${clip.id}/views`).catch(() => null), { once: true });
  if (embed) {
    document.body.classList.add("embed");
    replace(
      main,
      h("section", { class: "embed-page" },
        player.element,
        h("p", { class: "embed-title" },
          h("a", { href: clip.url, target: "_blank", rel: "noopener" }, clip.title),
          ` · ${clip.channel_slug}`)),
    );
    player.load(clip.playlist_url);
    return () => player.destroy();
  }

  const likes = h("span", { class: "like-count" }, formatNumber(clip.like_count));
  const like = h("button", { type: "button", class: "button", "aria-pressed": String(Boolean(clip.liked)), "data-action": "like" }, "♥ Like");
  const errors = h("div");
  like.addEventListener("click", async () => {
    if (!currentUser()) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    const liked = like.getAttribute("aria-pressed") === "true";
    try {
      const state = liked ? await del(`clips/${clip.id}/like`) : await post(`clips/${clip.id}/like`);
      like.setAttribute("aria-pressed", String(state.liked));
      likes.textContent = formatNumber(state.like_count);
    } catch (error) {
      replace(errors, errorBox(error));
    }
  });
  const share = `${location.origin}${clip.url}`;
  const embedCode = `<iframe src="${location.origin}${clip.embed_url}" width="640" height="360" allowfullscreen></iframe>`;
  const download = h("p", { class: "clip-download", role: "status" });
  let timer = null;
  function showDownload() {
    if (clip.mp4_state === "ready") {
      replace(download, h("a", { href: clip.mp4_url, download: `${clip.title}.mp4`, class: "button", "data-action": "download" }, "Download MP4"),
        ` ${formatDuration(clip.mp4_duration)}`);
    } else if (clip.mp4_state === "failed") {
      replace(download, "The MP4 could not be made; the clip still plays here.");
    } else {
      replace(download, "Preparing the MP4…");
      timer = setTimeout(async () => {
        clip = await get(`clips/${clip.id}`).catch(() => clip);
        showDownload();
      }, 1000);
    }
  }
  showDownload();
  replace(
    main,
    h("section", { class: "page clip-page" },
      player.element,
      h("h1", {}, clip.title),
      h("p", { class: "muted" },
        h("a", { href: `/${clip.channel_slug}` }, clip.channel_slug),
        clip.creator ? ` · clipped by ${clip.creator.display_name}` : "",
        ` · ${timeAgo(clip.created_at)} · ${formatDuration(clip.duration)} · ${formatNumber(clip.view_count)} views`),
      h("div", { class: "clip-actions" }, like, likes, " likes",
        currentUser()?.id === clip.creator?.id
          ? null
          : reportButton(() => [{ content_type: "clip", content_id: clip.id, label: "this clip" }])),
      errors,
      download,
      h("div", { class: "field" }, h("label", {}, "Share"), h("input", { readonly: true, value: share, class: "share-link" }), copyButton(() => share)),
      h("div", { class: "field" }, h("label", {}, "Embed"), h("input", { readonly: true, value: embedCode }), copyButton(() => embedCode)),
    ),
  );
  player.load(clip.playlist_url);
  return () => {
    clearTimeout(timer);
    player.destroy();
  };
}
