// Reports one by one (seed 003's list): pending, resolved or dismissed, paged by offset, each
// resolved with an action (resolve, dismiss, ban the author, warn them) and a note.
import { get, post } from "../../api.js";
import { h, replace, choice, errorBox, toast, spinner, formatNumber } from "../../dom.js";
import { REPORT_REASONS } from "../../report.js";
import { CONTENT_TYPES } from "./queue.js";
import { filterBar, filtersFrom, person, when } from "./controls.js";

const PAGE = 25;
const STATUSES = [["pending", "Pending"], ["resolved", "Resolved"], ["dismissed", "Dismissed"], ["all", "All"]];
const ACTIONS = [
  ["resolve", "Resolve: remove the content"],
  ["dismiss", "Dismiss: keep it"],
  ["warn", "Warn its author, keep it"],
  ["ban", "Remove it and ban its author"],
];
const RESOLUTIONS = {
  dismissed: "Dismissed: kept",
  warned: "Kept, its author warned",
  removed: "Resolved: removed",
  suspended: "Removed, its author suspended",
  banned: "Removed, its author banned",
};
const reasonName = new Map(REPORT_REASONS);
const typeName = new Map(CONTENT_TYPES);

export async function render(container, { query, navigate }) {
  const filters = filtersFrom(query, ["status"], { status: "pending" });
  const offset = Math.max(0, Number(query.get("offset")) || 0);
  const bar = filterBar([["Status", choice({ name: "status" }, STATUSES, filters.status)]], { query, navigate });
  const body = h("div", {}, spinner());
  replace(container, bar, body);
  let page;
  try {
    page = await get("admin/reports", { ...filters, limit: PAGE, offset });
  } catch (error) {
    return replace(body, errorBox(error));
  }
  const at = (n) => {
    const params = new URLSearchParams(query);
    params.set("offset", String(n));
    return `${location.pathname}?${params}`;
  };
  const last = Math.min(page.total, offset + page.items.length);
  replace(body,
    page.items.length
      ? h("ol", { class: "admin-list" }, page.items.map(reportItem))
      : h("p", { class: "empty" }, "No reports here."),
    h("nav", { class: "row pager", "aria-label": "Pages of reports" },
      h("span", { class: "muted" }, page.total ? `${formatNumber(offset + 1)}–${formatNumber(last)} of ${formatNumber(page.total)}` : ""),
      offset > 0 ? h("a", { class: "button small", href: at(Math.max(0, offset - PAGE)) }, "Previous") : null,
      last < page.total ? h("a", { class: "button small", href: at(offset + PAGE) }, "Next") : null));
}

function reportItem(report) {
  const card = h("li", { class: "panel report-item", dataset: { id: report.id } });
  const draw = (current) => replace(card,
    h("div", { class: "queue-head" },
      h("span", { class: "chip" }, typeName.get(current.content_type) || current.content_type),
      h("span", { class: `chip ${current.status}` }, current.status),
      h("strong", {}, reasonName.get(current.reason) || current.reason),
      current.count > 1 ? h("span", {}, `reported ${current.count} times`) : null,
      h("span", { class: "muted" }, "by ", person(current.reporter), " · ", when(current.created_at))),
    h("p", { class: "muted" }, "Item ", h("code", {}, current.content_id)),
    current.details ? h("blockquote", { class: "queue-text" }, current.details) : null,
    current.status === "pending"
      ? resolveForm(current, draw)
      : h("p", { class: `queue-decision ${current.status}` },
        h("strong", {}, RESOLUTIONS[current.resolution] || current.status),
        current.resolved_by ? [" by ", person(current.resolved_by)] : null,
        " · ", when(current.resolved_at)));
  draw(report);
  return card;
}

function resolveForm(report, redraw) {
  const action = choice({ name: "action" }, ACTIONS);
  const note = h("input", { name: "note", maxlength: 1000, placeholder: "A note for the record (optional)" });
  const errors = h("div");
  const apply = h("button", { type: "submit", class: "button small primary" }, "Apply");
  return h("form", {
    class: "row",
    onsubmit: async (event) => {
      event.preventDefault();
      replace(errors);
      apply.disabled = true;
      try {
        const answer = await post(`admin/reports/${report.id}/resolve`, { action: action.value, note: note.value.trim() || null });
        toast(`Report ${action.value === "dismiss" ? "dismissed" : "resolved"}`);
        redraw(answer);
      } catch (error) {
        replace(errors, errorBox(error));
        apply.disabled = false;
      }
    },
  },
    h("label", { class: "field" }, h("span", {}, "Action"), action),
    h("label", { class: "field" }, h("span", {}, "Note"), note),
    apply,
    errors);
}
