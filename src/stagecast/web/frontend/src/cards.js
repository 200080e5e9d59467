// Cards for live streams and recordings, shared by home, search and channel pages.
import { h, formatNumber, formatDuration, timeAgo } from "./dom.js";

// A live stream's thumbnail exists from the moment it is live (a plain frame stands in until
// the first real one); streams without one get a placeholder.
function thumbnail(url, alt) {
  if (url) {
    return h("img", { class: "thumb", src: url, alt, loading: "lazy", width: 320, height: 180 });
  }
  return h("div", { class: "thumb placeholder", "aria-hidden": "true" }, "▶");
}

export function streamCard(stream) {
  const live = stream.status === "live";
  const href = `/${stream.channel.slug}`;
  return h(
    "article",
    { class: "card", dataset: { streamId: stream.id } },
    h(
      "a",
      { href, class: "card-link", "aria-label": `${stream.title}, ${stream.channel.name}` },
      h(
        "div",
        { class: "thumb-box" },
        thumbnail(
          stream.thumbnail_url && `${stream.thumbnail_url}?t=${Math.floor(Date.now() / 30000)}`,
          "",
        ),
        live ? h("span", { class: "badge live" }, "LIVE") : null,
        live
          ? h("span", { class: "badge viewers" }, `${formatNumber(stream.viewer_count)} watching`)
          : null,
      ),
    ),
    h(
      "div",
      { class: "card-body" },
      h("h3", { class: "card-title" }, h("a", { href }, stream.title)),
      h("p", { class: "muted" }, h("a", { href }, stream.channel.name)),
      stream.category
        ? h("a", { class: "chip", href: `/browse?category=${encodeURIComponent(stream.category)}` }, stream.category)
        : null,
    ),
  );
}

export function vodCard(vod) {
  const href = `/vods/${vod.id}`;
  return h(
    "article",
    { class: "card", dataset: { vodId: vod.id } },
    h(
      "a",
      { href, class: "card-link", "aria-label": `Watch the recording: ${vod.title}` },
      h(
        "div",
        { class: "thumb-box" },
        thumbnail(vod.thumbnail_url, ""),
        h("span", { class: "badge viewers" }, formatDuration(vod.duration_seconds)),
      ),
    ),
    h(
      "div",
      { class: "card-body" },
      h("h3", { class: "card-title" }, h("a", { href }, vod.title)),
      h("p", { class: "muted" }, timeAgo(vod.created_at)),
    ),
  );
}

export function grid(items, empty) {
  return items.length ? h("div", { class: "grid" }, items) : h("p", { class: "empty" }, empty);
}
