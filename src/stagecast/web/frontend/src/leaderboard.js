// A channel's top supporters (GET /leaderboards/channel:<id>:supporters), for a period; it is
// fetched again, at most once a second, when tokens reach the channel's room.
import { get } from "./api.js";
import { h, replace, formatTokens } from "./dom.js";

const PERIODS = [["day", "Today"], ["week", "This week"], ["month", "This month"], ["all", "All time"]];
const MONEY_EVENTS = ["tip:received", "donation:received", "gift:sent", "subscription:new"];

export function createSupporters({ live, channel }) {
  const list = h("ol", { class: "leaderboard", "aria-live": "polite" });
  const period = h("select", { name: "period", "aria-label": "Period" },
    PERIODS.map(([value, text]) => h("option", { value, selected: value === "week" }, text)));
  let timer = null;

  async function load() {
    try {
      const board = await get(`leaderboards/channel:${channel.id}:supporters`, { period: period.value, limit: 5 });
      replace(
        list,
        board.data.length
          ? board.data.map((entry) =>
              h("li", { class: "leaderboard-entry" },
                h("span", { class: "rank" }, `#${entry.rank}`),
                h("span", { class: "who" }, entry.display_name || entry.username || "someone"),
                h("span", { class: "score muted" }, formatTokens(entry.score))))
          : h("li", { class: "muted" }, "No supporters yet in this period."),
      );
    } catch {
      replace(list, h("li", { class: "muted" }, "The leaderboard is not available right now."));
    }
  }
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(load, 1000);
  }
  period.addEventListener("change", load);
  for (const event of MONEY_EVENTS) live.on(event, soon);
  load();

  return {
    element: h("section", { class: "page supporters", "aria-labelledby": "supporters-title" },
      h("div", { class: "section-heading" }, h("h2", { id: "supporters-title" }, "Top supporters"), period),
      list),
    destroy() {
      clearTimeout(timer);
    },
  };
}
