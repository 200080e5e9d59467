// Small DOM helpers: elements are built with h(), text always goes in as text (never HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "hidden") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const numbers = new Intl.NumberFormat(undefined);
export const formatNumber = (n) => numbers.format(n ?? 0);

export function formatTokens(n) {
  return `${formatNumber(n)} ${Math.abs(n) === 1 ? "token" : "tokens"}`;
}

export function formatMoney(cents, currency = "usd") {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
export function timeAgo(iso) {
  if (!iso) return "";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [30, "day"],
    [12, "month"],
    [Infinity, "year"],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return "";
}

export function formatDate(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";
}

// A short message in the corner, read out by screen readers (the container is aria-live).
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: `toast toast-${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 5000);
}

// An error box for a form or a page: the problem's detail, and each field's message.
export function errorBox(error) {
  const problem = error?.problem;
  const fields = problem?.errors || [];
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("strong", {}, error?.message || "Something went wrong"),
    fields.length
      ? h("ul", {}, fields.map((f) => h("li", {}, `${f.field}: ${f.message}`)))
      : null,
    problem?.request_id && problem.status >= 500
      ? h("p", { class: "muted" }, `Request id: ${problem.request_id}`)
      : null,
  );
}

// A copy-to-clipboard button for a value (falls back to selecting it).
export function copyButton(getValue, label = "Copy") {
  const button = h("button", { type: "button", class: "button small" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(getValue());
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = label), 1500);
    } catch {
      toast("Copying is not allowed here; select the text and copy it", "error");
    }
  });
  return button;
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    hint ? h("small", { class: "muted" }, hint) : null,
  );
}

export function spinner(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

// A random UUID, also where crypto.randomUUID is missing (plain HTTP on a LAN address).
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// A modal dialog (the browser's <dialog>): a title, the given content and a close button. It
// is removed from the page when it closes; Escape closes it too.
export function openDialog(title, ...children) {
  const id = `d-${Math.random().toString(36).slice(2, 9)}`;
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": id },
    h("div", { class: "dialog-head" },
      h("h2", { id }, title),
      h("button", { type: "button", class: "button small ghost", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
    children);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// A <select> of [value, label] pairs.
export function choice(attrs, options, selected) {
  return h("select", attrs,
    options.map(([value, label]) => h("option", { value, selected: value === selected }, label)));
}

// A table: a caption for screen readers, column headings, and rows of cells (nodes or text).
export function table(caption, headings, rows) {
  return h("div", { class: "table-scroll" },
    h("table", { class: "table" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}

// A button that asks once more before doing something that cannot be undone: the first click
// shows the confirming button beside it, the second runs `action`.
export function confirmButton(label, confirmLabel, action) {
  const ask = h("button", { type: "button", class: "button small" }, label);
  const confirm = h("button", { type: "button", class: "button danger small", hidden: true }, confirmLabel);
  ask.addEventListener("click", () => {
    confirm.hidden = !confirm.hidden;
    if (!confirm.hidden) confirm.focus();
  });
  confirm.addEventListener("click", async () => {
    confirm.disabled = ask.disabled = true;
    try {
      await action();
    } finally {
      confirm.disabled = ask.disabled = false;
      confirm.hidden = true;
    }
  });
  return h("span", { class: "confirm" }, ask, confirm);
}

// A figure in a dashboard's row of stats: its label and its value (text, or a live element).
export function stat(label, value) {
  return h("div", { class: "stat" }, h("span", { class: "stat-label" }, label), value instanceof Node ? value : h("strong", { class: "stat-value" }, value));
}
