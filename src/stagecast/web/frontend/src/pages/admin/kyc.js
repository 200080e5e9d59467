// KYC review: the submitted verifications (pending first by default) with the legal name and
// date of birth, each document opened through the staff-only, audited document route (an
// image in the page, a PDF in a new tab), approved, or rejected with a reason the performer
// is told.
import { api, get, post } from "../../api.js";
import { h, replace, choice, errorBox, toast, formatNumber } from "../../dom.js";
import { cursorList, filterBar, filtersFrom, person, when } from "./controls.js";

const STATUSES = [["pending", "Pending"], ["approved", "Approved"], ["rejected", "Rejected"], ["all", "All"]];

export async function render(container, { query, navigate }) {
  const { status } = filtersFrom(query, ["status"], { status: "pending" });
  const urls = new Set();
  const bar = filterBar([["Status", choice({ name: "status" }, STATUSES, status)]], { query, navigate });
  const paged = cursorList({
    // The API lists every status when it is given none.
    load: (cursor) => get("admin/kyc", { status: status === "all" ? null : status, limit: 20, cursor }),
    item: (verification) => verificationItem(verification, urls),
    empty: "No verifications to review.",
  });
  replace(container, bar, paged.element);
  await paged.ready;
  // Decrypted documents live in this tab's memory only while the page is open.
  return () => {
    for (const url of urls) URL.revokeObjectURL(url);
  };
}

function age(born) {
  const today = new Date();
  const birth = new Date(`${born}T00:00:00Z`);
  let years = today.getUTCFullYear() - birth.getUTCFullYear();
  const before = today.getUTCMonth() < birth.getUTCMonth()
    || (today.getUTCMonth() === birth.getUTCMonth() && today.getUTCDate() < birth.getUTCDate());
  if (before) years -= 1;
  return years;
}

function documentItem(doc, index, urls) {
  const shown = h("div", { class: "kyc-shown" });
  const kind = doc.content_type === "application/pdf" ? "PDF" : "image";
  const open = h("button", { type: "button", class: "button small" }, `Open document ${index + 1}`);
  open.addEventListener("click", async () => {
    open.disabled = true;
    try {
      const file = await api(`admin/kyc/documents/${doc.id}`, { blob: true });
      const url = URL.createObjectURL(file);
      urls.add(url);
      if (kind === "PDF") {
        replace(shown, h("a", { href: url, target: "_blank", rel: "noopener", class: "button small" }, `Read document ${index + 1} (PDF) in a new tab`));
      } else {
        replace(shown, h("img", { class: "kyc-document", src: url, alt: `Document ${index + 1} of the submission` }));
      }
    } catch (error) {
      replace(shown, errorBox(error));
    } finally {
      open.disabled = false;
    }
  });
  return h("li", {}, open, h("span", { class: "muted" }, ` ${kind}, ${formatNumber(Math.ceil(doc.size_bytes / 1024))} KB`), shown);
}

function verificationItem(verification, urls) {
  const card = h("li", { class: "panel kyc-item", dataset: { id: verification.id, status: verification.status } });
  const draw = (current) => {
    replace(card,
      h("div", { class: "queue-head" },
        h("span", { class: `chip ${current.status}` }, current.status),
        h("strong", { class: "kyc-name" }, current.legal_name || "(name erased)"),
        current.date_of_birth ? h("span", {}, `born ${current.date_of_birth} (${age(current.date_of_birth)} years old)`) : null,
        h("span", { class: "muted" }, "account ", person(current.user || current.user_id), " · submitted ", when(current.created_at))),
      current.documents_deleted
        ? h("p", { class: "muted" }, "The documents were deleted after the retention period.")
        : h("ul", { class: "kyc-documents" }, current.documents.map((doc, i) => documentItem(doc, i, urls))),
      current.status === "pending"
        ? decideForm(current, draw)
        : h("p", { class: `queue-decision ${current.status}` },
          current.status === "approved" ? "Approved" : "Rejected", " · ", when(current.decided_at),
          current.rejection_reason ? ` — ${current.rejection_reason}` : ""));
  };
  draw(verification);
  return card;
}

function decideForm(verification, redraw) {
  const reason = h("input", { name: "reason", maxlength: 500, placeholder: "Told to the performer: what to fix" });
  const errors = h("div");
  const approve = h("button", { type: "button", class: "button small primary" }, "Approve");
  const reject = h("button", { type: "button", class: "button small danger" }, "Reject");
  async function decide(path, body) {
    replace(errors);
    approve.disabled = reject.disabled = true;
    try {
      const answer = await post(`admin/kyc/${verification.id}/${path}`, body);
      toast(path === "approve" ? "Verification approved" : "Verification rejected");
      redraw(answer);
    } catch (error) {
      replace(errors, errorBox(error));
      approve.disabled = reject.disabled = false;
    }
  }
  approve.addEventListener("click", () => decide("approve"));
  reject.addEventListener("click", () => {
    if (!reason.value.trim()) {
      replace(errors, h("p", { class: "error-box", role: "alert" }, "Give a reason to reject: the performer is told it."));
      reason.focus();
      return;
    }
    decide("reject", { reason: reason.value.trim() });
  });
  return h("div", { class: "stack" },
    h("div", { class: "row" },
      approve,
      h("label", { class: "field" }, h("span", {}, "Reason to reject"), reason),
      reject),
    errors);
}
