// The header's notifications bell: the unread count as a badge, a dropdown of the latest
// notifications, marking them read. New ones arrive live on the user's own room
// (`notification:new`); the count is fetched again on every (re)connect, so nothing missed
// while offline is lost. One bell per signed-in user, kept across page changes.
import { get, post } from "./api.js";
import { h, replace, timeAgo, toast } from "./dom.js";
import { openSocket } from "./realtime.js";

const LIMIT = 10;

// What a notification says, and where it leads.
function describe(note) {
  const p = note.payload || {};
  switch (note.kind) {
    case "stream.live":
      return { text: `${p.channel_name || p.channel_slug} went live${p.title ? `: ${p.title}` : ""}`, href: `/${p.channel_slug}` };
    case "subscription.lapsed":
      return { text: `Your subscription to ${p.channel_slug} lapsed: ${p.reason || "it could not be renewed"}`, href: "/wallet" };
    default:
      return { text: note.kind, href: null };
  }
}

export function createBell() {
  let unread = 0;
  let loaded = false;
  let notes = [];
  const count = h("span", { class: "bell-count", "aria-hidden": "true", hidden: true });
  const button = h(
    "button",
    { type: "button", class: "button small ghost bell", "aria-expanded": "false", "aria-controls": "bell-panel", "aria-label": "Notifications" },
    h("span", { "aria-hidden": "true" }, "🔔"),
    count,
  );
  const list = h("ul", { class: "bell-list" });
  const markAll = h("button", { type: "button", class: "link", onclick: () => markAllRead() }, "Mark all read");
  const panel = h(
    "div",
    { class: "bell-panel", id: "bell-panel", role: "region", "aria-label": "Notifications", hidden: true },
    h("div", { class: "bell-head" }, h("strong", {}, "Notifications"), markAll),
    list,
  );
  const element = h("div", { class: "bell-wrap" }, button, panel);

  function showCount(n) {
    unread = Math.max(0, n);
    count.textContent = unread > 99 ? "99+" : String(unread);
    count.hidden = unread === 0;
    button.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
    markAll.hidden = unread === 0;
  }

  function item(note) {
    const { text, href } = describe(note);
    const isUnread = !note.read_at;
    return h(
      "li",
      { class: `bell-item${isUnread ? " unread" : ""}`, dataset: { id: note.id } },
      href ? h("a", { href, onclick: () => { if (!note.read_at) markRead(note); close(); } }, text) : h("span", {}, text),
      h("small", { class: "muted" }, timeAgo(note.created_at)),
      isUnread
        ? h("button", { type: "button", class: "link", "aria-label": `Mark read: ${text}`, onclick: () => markRead(note) }, "Mark read")
        : null,
    );
  }

  function showList() {
    replace(list, notes.length ? notes.map(item) : h("li", { class: "empty" }, "Nothing yet."));
  }

  async function load() {
    try {
      const page = await get("notifications", { limit: LIMIT });
      notes = page.data;
      loaded = true;
      showList();
    } catch (error) {
      replace(list, h("li", { class: "chat-error" }, error.message));
    }
  }

  async function refreshCount() {
    try {
      showCount((await get("notifications/unread-count")).unread);
    } catch {
      // the badge keeps its last value; the next connect tries again
    }
  }

  async function markRead(note) {
    try {
      const done = await post(`notifications/${note.id}/read`);
      notes = notes.map((n) => (n.id === note.id ? done : n));
      showList();
      await refreshCount();
      button.focus();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function markAllRead() {
    try {
      await post("notifications/read-all");
      const now = new Date().toISOString();
      notes = notes.map((n) => ({ ...n, read_at: n.read_at || now }));
      showList();
      showCount(0);
      button.focus();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  function open() {
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    // A disclosure: the focus stays on the button, Tab moves into the list that follows it.
    if (!loaded) load();
  }

  function close({ focus = false } = {}) {
    if (panel.hidden) return;
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focus) button.focus();
  }

  button.addEventListener("click", () => (panel.hidden ? open() : close()));
  element.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      event.preventDefault();
      close({ focus: true });
    }
  });
  const outside = (event) => {
    if (!element.contains(event.target)) close();
  };
  document.addEventListener("click", outside);
  element.addEventListener("focusout", (event) => {
    if (event.relatedTarget && !element.contains(event.relatedTarget)) close();
  });

  const live = openSocket();
  live.socket.on("connect", refreshCount);
  live.on("notification:new", (note) => {
    showCount(unread + 1);
    if (loaded) {
      notes = [{ ...note, read_at: null }, ...notes.filter((n) => n.id !== note.id)].slice(0, LIMIT);
      showList();
    }
    toast(describe(note).text);
  });
  showCount(0);

  return {
    element,
    destroy() {
      document.removeEventListener("click", outside);
      live.close();
    },
  };
}
