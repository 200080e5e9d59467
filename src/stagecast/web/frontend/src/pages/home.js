// Home and browse: live streams now (most watched first), categories, a category's streams.
import { get } from "../api.js";
import { h, replace, formatNumber } from "../dom.js";
import { grid, streamCard } from "../cards.js";

const REFRESH_MS = 15_000;

export async function render({ main, query }) {
  const category = query.get("category") || "";
  const [streams, categories] = await Promise.all([
    get("browse", { sort: "viewers", category, limit: 48 }),
    get("categories", { limit: 50 }),
  ]);
  const shown = categories.data.find((c) => c.slug === category);
  const heading = category ? (shown?.name || category) : "Live now";
  document.title = `${heading} · Stagecast`;

  const list = h("div", { id: "live-now" }, grid(streams.data.map(streamCard), emptyText(category)));
  replace(
    main,
    h(
      "section",
      { class: "page", "aria-labelledby": "home-title" },
      h("h1", { id: "home-title" }, heading),
      category ? h("p", {}, h("a", { href: "/browse" }, "← All live streams")) : null,
      list,
    ),
    h(
      "section",
      { class: "page", "aria-labelledby": "categories-title" },
      h("h2", { id: "categories-title" }, "Categories"),
      categories.data.length
        ? h(
            "ul",
            { class: "chips" },
            categories.data.map((c) =>
              h(
                "li",
                {},
                h(
                  "a",
                  {
                    class: "chip",
                    href: `/browse?category=${encodeURIComponent(c.slug)}`,
                    "aria-current": c.slug === category ? "page" : null,
                  },
                  c.name,
                  c.live_streams
                    ? h("span", { class: "chip-count" }, ` · ${formatNumber(c.viewers)} watching`)
                    : null,
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, "No categories yet."),
    ),
  );

  // Keep the list fresh while the page is open (new streams, viewer counts, thumbnails).
  const timer = setInterval(async () => {
    try {
      const fresh = await get("browse", { sort: "viewers", category, limit: 48 });
      replace(list, grid(fresh.data.map(streamCard), emptyText(category)));
    } catch {
      // the next tick tries again
    }
  }, REFRESH_MS);
  return () => clearInterval(timer);
}

function emptyText(category) {
  return category
    ? "Nobody is live in this category right now."
    : "Nobody is live right now. Go live from your browser and be the first.";
}
