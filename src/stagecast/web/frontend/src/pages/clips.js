// Trending clips across the platform (GET /clips/trending), a page at a time.
import { get } from "../api.js";
import { h, replace } from "../dom.js";
import { grid } from "../cards.js";
import { clipCard } from "../clips.js";

export async function render({ main }) {
  document.title = "Trending clips · Stagecast";
  const list = h("div", { id: "trending-clips" });
  const more = h("button", { type: "button", class: "button", hidden: true }, "More");
  let cursor = null;
  async function load() {
    const page = await get("clips/trending", { limit: 24, cursor });
    cursor = page.next_cursor;
    more.hidden = !page.has_more;
    if (!list.childElementCount) replace(list, grid(page.data.map(clipCard), "No clips this week yet."));
    else list.querySelector(".grid")?.append(...page.data.map(clipCard));
  }
  more.addEventListener("click", load);
  replace(main, h("section", { class: "page" }, h("h1", {}, "Trending clips"), list, more));
  await load();
}
