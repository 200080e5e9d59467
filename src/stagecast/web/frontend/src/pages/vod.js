// A past broadcast: the recording in the same player, with the channel's other recordings.
import { get } from "../api.js";
import { h, replace, formatDuration, formatDate } from "../dom.js";
import { createPlayer } from "../player.js";
import { grid, vodCard } from "../cards.js";
import { clipButton, vodClipSource } from "../clips.js";

export async function render({ main, params }) {
  const vod = await get(`vods/${encodeURIComponent(params[0])}`);
  const [channel, others] = await Promise.all([
    get(`channels/${vod.channel_id}`),
    get(`channels/${vod.channel_id}/vods`, { limit: 12 }),
  ]);
  document.title = `${vod.title} · ${channel.name} · Stagecast`;
  const player = createPlayer({ label: `Recording: ${vod.title}` });
  const clipper = clipButton({ video: player.video, source: vodClipSource(vod.id) });
  replace(
    main,
    h(
      "section",
      { class: "page vod-page" },
      player.element,
      h("div", { class: "clip-bar" }, clipper.button),
      clipper.editor,
      h("h1", {}, vod.title),
      h(
        "p",
        { class: "muted" },
        h("a", { href: `/${channel.slug}` }, channel.name),
        ` · ${formatDate(vod.created_at)} · ${formatDuration(vod.duration_seconds)}`,
      ),
      h("h2", {}, "More from this channel"),
      grid(others.data.filter((v) => v.id !== vod.id).map(vodCard), "No other recordings."),
    ),
  );
  player.load(vod.playlist_url);
  return () => player.destroy();
}
