// Search: streams, channels and people, best first.
import { get } from "../api.js";
import { h, replace, formatNumber } from "../dom.js";
import { grid, streamCard } from "../cards.js";

export async function render({ main, query }) {
  const q = (query.get("q") || "").trim();
  document.title = q ? `“${q}” · Search · Stagecast` : "Search · Stagecast";
  if (!q) {
    replace(main, h("section", { class: "page" }, h("h1", {}, "Search"), h("p", {}, "Type in the search box above.")));
    return;
  }
  const results = await get("search", { q, limit: 40 });
  const streams = results.data.filter((r) => r.type === "stream").map((r) => r.stream);
  const channels = results.data.filter((r) => r.type === "channel").map((r) => r.channel);
  const users = results.data.filter((r) => r.type === "user").map((r) => r.user);
  replace(
    main,
    h(
      "section",
      { class: "page" },
      h("h1", {}, `Results for “${q}”`),
      results.data.length ? null : h("p", { class: "empty" }, "Nothing matches. Try another word."),
      streams.length ? [h("h2", {}, "Streams"), grid(streams.map(streamCard), "")] : null,
      channels.length
        ? [
            h("h2", {}, "Channels"),
            h(
              "ul",
              { class: "list" },
              channels.map((c) =>
                h(
                  "li",
                  {},
                  h("a", { href: `/${c.slug}` }, c.name),
                  c.is_live ? h("span", { class: "badge live inline" }, "LIVE") : null,
                  h("span", { class: "muted" }, ` · ${formatNumber(c.follower_count)} followers`),
                ),
              ),
            ),
          ]
        : null,
      users.length
        ? [
            h("h2", {}, "People"),
            h("ul", { class: "list" }, users.map((u) => h("li", {}, u.display_name || u.username, h("span", { class: "muted" }, ` @${u.username}`)))),
          ]
        : null,
    ),
  );
}
