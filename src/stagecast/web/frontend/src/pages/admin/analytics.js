// Analytics: the platform's totals over a period and a bar chart per figure by day, drawn as
// inline SVG (each bar says its day and value on hover and to screen readers as a list).
import { get } from "../../api.js";
import { h, replace, choice, stat, formatMoney, formatNumber } from "../../dom.js";
import { filterBar } from "./controls.js";

const PERIODS = [["day", "Today"], ["week", "Last 7 days"], ["month", "Last 30 days"], ["quarter", "Last 90 days"], ["year", "Last 365 days"]];
const SVG = "http://www.w3.org/2000/svg";

export async function render(container, { query, navigate }) {
  const period = PERIODS.some(([p]) => p === query.get("period")) ? query.get("period") : "month";
  const bar = filterBar([["Period", choice({ name: "period" }, PERIODS, period)]], { query, navigate });
  const overview = await get("admin/analytics/overview", { period });
  const t = overview.totals;
  const money = (cents) => formatMoney(cents, overview.currency);
  const hours = (n) => `${formatNumber(Math.round(n * 10) / 10)} h`;
  replace(container,
    bar,
    h("div", { class: "stats analytics-totals" },
      stat("Users", formatNumber(t.users)),
      stat("New users", formatNumber(t.new_users)),
      stat("Creators", formatNumber(t.creators)),
      stat("Live now", formatNumber(t.live_now)),
      stat("Streams", formatNumber(t.streams)),
      stat("Hours streamed", hours(t.hours_streamed)),
      stat("Tokens bought", formatNumber(t.tokens_bought)),
      stat("Sales", money(t.purchases_cents)),
      stat("Tokens tipped", formatNumber(t.tokens_tipped)),
      stat("Platform revenue (tokens)", formatNumber(t.platform_fee_tokens)),
      stat("Paid out (tokens)", formatNumber(t.payouts_tokens)),
      stat("Payouts pending", formatNumber(t.payouts_pending)),
      stat("Reports open", formatNumber(t.reports_open))),
    h("div", { class: "charts" },
      chart("New users", overview.days, "new_users", formatNumber),
      chart("Streams", overview.days, "streams", formatNumber),
      chart("Hours streamed", overview.days, "hours_streamed", hours),
      chart("Tokens bought", overview.days, "tokens_bought", formatNumber),
      chart("Sales", overview.days, "purchases_cents", money),
      chart("Tokens tipped", overview.days, "tokens_tipped", formatNumber),
      chart("Platform revenue (tokens)", overview.days, "platform_fee_tokens", formatNumber),
      chart("Paid out (tokens)", overview.days, "payouts_tokens", formatNumber)));
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

const dayLabel = (day) => new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

/** One figure by day: a bar per day scaled to the period's largest, the first and last days
 * under the axis, the largest value beside it. */
export function chart(title, days, key, format) {
  const width = 320;
  const height = 120;
  const values = days.map((d) => Number(d[key]) || 0);
  const top = Math.max(...values, 0);
  const slot = width / Math.max(1, values.length);
  const gap = slot > 6 ? 1 : 0;
  const bars = values.map((value, i) => {
    const tall = top ? Math.max(value ? 1 : 0, (value / top) * height) : 0;
    return svg("rect", { class: "bar", x: (i * slot + gap / 2).toFixed(2), y: (height - tall).toFixed(2), width: Math.max(0.5, slot - gap).toFixed(2), height: tall.toFixed(2), "data-day": days[i].day, "data-value": value },
      svg("title", {}, `${dayLabel(days[i].day)}: ${format(value)}`));
  });
  const total = values.reduce((a, b) => a + b, 0);
  return h("figure", { class: "panel chart-card", dataset: { figure: key } },
    h("figcaption", {}, h("strong", {}, title), h("span", { class: "muted" }, ` ${format(total)} in the period · peak ${format(top)} a day`)),
    svg("svg", { class: "bar-chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": `${title} by day: ${format(total)} in all, at most ${format(top)} a day` },
      svg("line", { class: "axis", x1: 0, y1: height, x2: width, y2: height }),
      ...bars),
    days.length
      ? h("div", { class: "chart-axis muted" }, h("span", {}, dayLabel(days[0].day)), h("span", {}, dayLabel(days[days.length - 1].day)))
      : null);
}
