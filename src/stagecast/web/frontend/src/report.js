// Reporting something to the moderators: a dialog with the reason (the API's fixed list) and
// optional details, sent to POST /api/v1/reports. A second report of the same thing while the
// first is pending is merged into it (200 instead of 201); the dialog says which happened.
import { api } from "./api.js";
import { currentUser } from "./auth.js";
import { h, replace, openDialog, choice, field, errorBox, toast } from "./dom.js";

export const REPORT_REASONS = [
  ["spam", "Spam"],
  ["harassment", "Harassment or bullying"],
  ["hate", "Hateful content"],
  ["violence", "Violence"],
  ["sexual_content", "Sexual content"],
  ["self_harm", "Self-harm"],
  ["minor_safety", "A minor's safety"],
  ["illegal", "Illegal content"],
  ["copyright", "Copyright"],
  ["misinformation", "Misinformation"],
  ["impersonation", "Impersonation"],
  ["other", "Something else"],
];

/**
 * Open the report dialog. `targets` are what may be reported from here, each
 * {content_type, content_id, label}; with more than one, the dialog asks which.
 */
export function openReport(targets) {
  const what = targets.length > 1
    ? choice({ name: "target" }, targets.map((t, i) => [String(i), t.label]))
    : null;
  const reason = choice({ name: "reason" }, REPORT_REASONS);
  const details = h("textarea", { name: "details", maxlength: 2000, rows: 3, placeholder: "What is wrong? (optional)" });
  const errors = h("div");
  const send = h("button", { type: "submit", class: "button primary" }, "Send report");
  const form = h("form", { class: "stack report-form" },
    what ? field("What are you reporting?", what) : h("p", { class: "muted" }, `Reporting ${targets[0].label}.`),
    field("Reason", reason),
    field("Details (optional)", details),
    errors,
    h("div", { class: "row" },
      send,
      h("button", { type: "button", class: "button ghost", onclick: () => dialog.close() }, "Cancel")));
  const dialog = openDialog("Report to the moderators", form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(errors);
    send.disabled = true;
    const target = targets[what ? Number(what.value) : 0];
    try {
      const { status } = await api("reports", {
        method: "POST",
        withStatus: true,
        body: {
          content_type: target.content_type,
          content_id: target.content_id,
          reason: reason.value,
          details: details.value.trim() || null,
        },
      });
      dialog.close();
      toast(status === 201
        ? "Thanks: the moderators will look at it"
        : "You had reported this already: your report was updated");
    } catch (error) {
      replace(errors, errorBox(error));
      if (error.status === 429 && error.problem?.retry_after) {
        errors.append(h("p", { class: "muted" }, `You can report again in ${Math.ceil(error.problem.retry_after)} s.`));
      }
      send.disabled = false;
    }
  });
  return dialog;
}

/** A "Report" button opening the dialog; `targets()` answers the list openReport takes when
 * clicked (what is on air may have changed). Visitors are sent to sign in first. */
export function reportButton(targets, { label = "Report", small = true } = {}) {
  const cls = `button${small ? " small" : ""} ghost report-button`;
  if (!currentUser()) {
    return h("a", { class: cls, href: `/login?next=${encodeURIComponent(location.pathname)}` }, label);
  }
  return h("button", { type: "button", class: cls, "aria-haspopup": "dialog", onclick: () => openReport(targets()) }, label);
}
