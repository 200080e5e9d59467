// The audit log, newest first: every write and every sensitive read, filtered by actor,
// action, resource, outcome, client address (matched by its keyed hash), request id and time.
import { get } from "../../api.js";
import { h, replace, choice } from "../../dom.js";
import { cursorList, filterBar, filtersFrom, isoFromLocal, person, when } from "./controls.js";

const OUTCOMES = [["", "Any outcome"], ["success", "Success"], ["denied", "Denied"], ["rejected", "Rejected"], ["error", "Error"]];
const NAMES = ["actor", "action", "resource", "outcome", "ip", "request_id", "from", "to"];

export async function render(container, { query, navigate }) {
  const filters = filtersFrom(query, NAMES);
  // The time filters are typed in local time; the API wants zoned times.
  for (const name of ["from", "to"]) if (filters[name]) filters[name] = isoFromLocal(filters[name]);
  const bar = filterBar([
    ["Actor (user id)", h("input", { name: "actor", maxlength: 36, pattern: "[0-9a-fA-F-]{36}", placeholder: "a user's id" })],
    ["Action", h("input", { name: "action", maxlength: 80, placeholder: "e.g. tip_stream" })],
    ["Resource", h("input", { name: "resource", maxlength: 80, placeholder: "e.g. kyc" })],
    ["Outcome", choice({ name: "outcome" }, OUTCOMES)],
    ["IP address", h("input", { name: "ip", maxlength: 64 })],
    ["Request id", h("input", { name: "request_id", maxlength: 128 })],
    ["From", h("input", { name: "from", type: "datetime-local" })],
    ["To", h("input", { name: "to", type: "datetime-local" })],
  ], { query, navigate });
  const paged = cursorList({
    load: (cursor) => get("admin/audit", { ...filters, limit: 50, cursor }),
    item: auditRow,
    empty: "No audit events match.",
    tag: "tbody",
    className: "audit-rows",
  });
  replace(container, bar,
    h("div", { class: "table-scroll" },
      h("table", { class: "table audit" },
        h("caption", { class: "visually-hidden" }, "Audit events"),
        h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Route", "Status", "Outcome", "Request"].map((t) => h("th", { scope: "col" }, t)))),
        paged.list)),
    paged.footer);
  await paged.ready;
}

function auditRow(event) {
  const ids = Object.entries(event.resource_ids || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  return h("tr", { class: `audit-${event.outcome}`, dataset: { id: event.id } },
    h("td", {}, when(event.occurred_at)),
    h("td", {}, event.actor_id
      ? h("a", { href: `/admin/audit?actor=${event.actor_id}`, title: "Only this actor's events" }, person(event.actor_id))
      : h("span", { class: "muted" }, event.api_key_id ? "API key" : "anonymous")),
    h("td", {}, h("strong", {}, event.action), h("div", { class: "muted" }, event.resource, ids ? ` ${ids}` : "")),
    h("td", {}, h("code", {}, `${event.method} ${event.route}`)),
    h("td", {}, String(event.status)),
    h("td", {}, event.outcome),
    h("td", {}, event.request_id ? h("code", { title: event.request_id }, event.request_id.slice(0, 12)) : "—"));
}
