// The moderation queue: one entry per reported or flagged thing, oldest first, with what it
// is, why people reported it and the latest reports. Approving keeps it; rejecting removes or
// hides it, and may suspend or ban its author too. It follows the staff room's
// `moderation:case_updated` while it is open.
import { get, post } from "../../api.js";
import { h, replace, choice, errorBox, toast } from "../../dom.js";
import { openSocket } from "../../realtime.js";
import { REPORT_REASONS } from "../../report.js";
import { cursorList, filterBar, filtersFrom, person, when } from "./controls.js";

export const CONTENT_TYPES = [
  ["user", "Account"],
  ["stream", "Live stream"],
  ["vod", "Recording"],
  ["clip", "Clip"],
  ["chat_message", "Chat message"],
  ["channel", "Channel"],
];
const STATUSES = [["open", "Open"], ["approved", "Approved (kept)"], ["rejected", "Rejected (removed)"], ["all", "All"]];
const SOURCES = [["all", "Reports and flags"], ["reports", "Reports"], ["flags", "Automatic flags"]];
const REJECT_ACTIONS = [
  ["remove", "Remove the content"],
  ["suspend", "Remove it and suspend the author"],
  ["ban", "Remove it and ban the author"],
];
const reasonName = new Map(REPORT_REASONS);
const typeName = new Map(CONTENT_TYPES);

export async function render(container, { query, navigate }) {
  const filters = filtersFrom(query, ["status", "content_type", "reason", "source"], { status: "open", source: "all" });
  const bar = filterBar([
    ["Status", choice({ name: "status" }, STATUSES, filters.status)],
    ["Kind", choice({ name: "content_type" }, [["", "Any"], ...CONTENT_TYPES])],
    ["Reason", choice({ name: "reason" }, [["", "Any"], ...REPORT_REASONS])],
    ["From", choice({ name: "source" }, SOURCES, filters.source)],
  ], { query, navigate });
  const cards = new Map(); // case id -> {card, draw} of the entries on the page
  const paged = cursorList({
    load: (cursor) => get("moderation/queue", { ...filters, limit: 20, cursor }),
    item: (item) => queueItem(item, cards),
    empty: "Nothing waits in the queue.",
    tag: "ol",
    className: "admin-list queue",
  });
  const show = h("button", { type: "button", class: "button small" }, "Show them");
  const fresh = h("p", { class: "notice queue-fresh", role: "status", hidden: true }, "New reports came in. ", show);
  show.addEventListener("click", () => {
    fresh.hidden = true;
    cards.clear();
    paged.reload();
  });
  // Staff sockets hear of every case reported, flagged or decided: entries on the page are
  // drawn again (unless someone is typing in one), others are offered.
  const live = openSocket();
  live.on("moderation:case_updated", async (event) => {
    const shown = cards.get(event.case_id);
    if (!shown) {
      if (event.change === "reported") fresh.hidden = false;
      return;
    }
    if (shown.card.contains(document.activeElement) && event.change !== "decided") return;
    try {
      shown.draw(await get(`moderation/queue/${event.case_id}`));
    } catch {
      // the next load of the list shows it
    }
  });
  replace(container, bar, fresh, paged.element);
  await paged.ready;
  return () => live.close();
}

function chip(text, extra = "") {
  return h("span", { class: `chip ${extra}` }, text);
}

function contentPreview(item) {
  const content = item.content || {};
  if (!content.exists) return h("p", { class: "empty" }, "This no longer exists.");
  return h("div", { class: "queue-content" },
    content.title ? h("p", { class: "queue-title" }, content.title) : null,
    content.text ? h("blockquote", { class: "queue-text" }, content.text) : null,
    h("p", { class: "muted" },
      content.author ? ["by ", person(content.author)] : null,
      content.url ? [" · ", h("a", { href: content.url }, "open it")] : null,
      content.removed ? [" · ", chip("removed", "bad")] : null));
}

function latestReports(reports) {
  if (!reports?.length) return null;
  return h("details", { class: "queue-reports" },
    h("summary", {}, `Latest reports (${reports.length})`),
    h("ul", {}, reports.map((r) => h("li", {},
      h("strong", {}, reasonName.get(r.reason) || r.reason),
      " from ", r.reporter ? person(r.reporter) : "an erased account",
      " · ", when(r.created_at),
      r.details ? h("p", { class: "queue-details" }, r.details) : null))));
}

// What a decision did, in words (the API's `decision_action`).
const OUTCOMES = {
  dismissed: "Approved: kept",
  warned: "Kept, its author warned",
  removed: "Rejected: removed",
  suspended: "Rejected: removed, its author suspended",
  banned: "Rejected: removed, its author banned",
};

function decided(item) {
  const outcome = OUTCOMES[item.decision_action] || (item.status === "approved" ? OUTCOMES.dismissed : OUTCOMES.removed);
  return h("p", { class: `queue-decision ${item.status}` },
    h("strong", {}, outcome),
    item.decided_by ? [" by ", person(item.decided_by)] : null, " · ", when(item.decided_at),
    item.decision_note ? h("span", {}, ` — ${item.decision_note}`) : null);
}

function decideForm(item, redraw) {
  const note = h("input", { name: "note", maxlength: 1000, placeholder: "Why (kept in the record, told to reporters)" });
  const action = choice({ name: "action" }, REJECT_ACTIONS);
  const errors = h("div");
  const approve = h("button", { type: "button", class: "button small" }, "Approve (keep)");
  const reject = h("button", { type: "button", class: "button small danger" }, "Reject");
  async function decide(verb, body) {
    replace(errors);
    approve.disabled = reject.disabled = true;
    try {
      const answer = await post(`moderation/queue/${item.id}/${verb}`, body);
      toast(verb === "approve" ? "Kept: the reports are closed" : "Rejected: the content is removed");
      redraw(answer);
    } catch (error) {
      replace(errors, errorBox(error));
      approve.disabled = reject.disabled = false;
    }
  }
  approve.addEventListener("click", () => decide("approve", { note: note.value.trim() || null }));
  reject.addEventListener("click", () => decide("reject", { note: note.value.trim() || null, action: action.value }));
  return h("div", { class: "queue-decide stack" },
    h("label", { class: "field" }, h("span", {}, "Note"), note),
    h("div", { class: "row" }, approve, h("label", { class: "field" }, h("span", {}, "On rejection"), action), reject),
    errors);
}

function queueItem(item, cards) {
  const card = h("li", { class: `panel queue-item ${item.status}`, dataset: { id: item.id, contentType: item.content_type, contentId: item.content_id } });
  const draw = (current) => {
    const reasons = Object.entries(current.reasons || {}).sort((a, b) => b[1] - a[1]);
    replace(card,
      h("div", { class: "queue-head" },
        chip(typeName.get(current.content_type) || current.content_type),
        chip(current.status, current.status),
        current.report_count ? h("span", {}, `${current.report_count} ${current.report_count === 1 ? "report" : "reports"} from ${current.reporter_count} ${current.reporter_count === 1 ? "person" : "people"}`) : null,
        current.flag_count ? h("span", {}, `${current.flag_count} automatic ${current.flag_count === 1 ? "flag" : "flags"}${current.flag_kinds?.length ? ` (${current.flag_kinds.join(", ")})` : ""}`) : null,
        h("span", { class: "muted" }, "first ", when(current.first_reported_at), " · last ", when(current.last_reported_at))),
      contentPreview(current),
      reasons.length ? h("ul", { class: "chips" }, reasons.map(([reason, n]) => h("li", {}, chip(`${reasonName.get(reason) || reason} (${n})`)))) : null,
      latestReports(current.reports),
      current.status === "open" ? decideForm(current, draw) : decided(current));
  };
  draw(item);
  cards.set(item.id, { card, draw });
  return card;
}
