// Announcements as banners under the header, and maintenance mode as a page for everyone but
// admins. Both come from GET /api/v1/announcements/active (public, open during maintenance),
// read on start and every minute; a 503 MAINTENANCE from any API call shows the page at once.
import { h, replace } from "./dom.js";

const POLL_MS = 60_000;
const DISMISSED = "stagecast.dismissed-announcements";
let maintenance = null;
const listeners = new Set();

export const currentMaintenance = () => maintenance;
export const onMaintenanceChange = (listener) => listeners.add(listener);

function setMaintenance(next) {
  const was = Boolean(maintenance);
  maintenance = next && next.enabled ? next : null;
  if (was !== Boolean(maintenance)) for (const listener of listeners) listener(maintenance);
}

export function maintenanceStarted(state) {
  setMaintenance(state || { enabled: true });
}

function dismissed() {
  try {
    return new Set(JSON.parse(sessionStorage.getItem(DISMISSED)) || []);
  } catch {
    return new Set();
  }
}

function dismiss(id) {
  const ids = dismissed();
  ids.add(id);
  sessionStorage.setItem(DISMISSED, JSON.stringify([...ids]));
}

function draw(list, state) {
  const box = document.getElementById("announcements");
  if (!box) return;
  const hidden = dismissed();
  // Admins keep the app during maintenance: they are reminded that nobody else has it.
  const notice = state?.enabled
    ? h("div", { class: "announcement announcement-warning", role: "status" },
        h("strong", { class: "announcement-title" }, "Maintenance mode is on"),
        " ",
        h("span", { class: "announcement-content" }, state.message || "Only admins can use the platform."),
      )
    : null;
  replace(
    box,
    notice,
    list
      .filter((a) => !hidden.has(a.id))
      .map((a) => {
        const banner = h(
          "div",
          { class: `announcement announcement-${a.type}`, role: a.type === "error" ? "alert" : "status", "data-id": a.id },
          h("strong", { class: "announcement-title" }, a.title),
          " ",
          h("span", { class: "announcement-content" }, a.content),
          h("button", {
            type: "button",
            class: "button small ghost",
            "aria-label": `Dismiss: ${a.title}`,
            onclick: () => {
              dismiss(a.id);
              banner.remove();
            },
          }, "×"),
        );
        return banner;
      }),
  );
}

async function poll() {
  try {
    const response = await fetch("/api/v1/announcements/active", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const body = await response.json();
    draw(body.data || [], body.maintenance);
    setMaintenance(body.maintenance);
  } catch {
    // offline for a moment: the next poll tries again
  }
}

// Read the banners again now (after an admin changed them).
export const refreshAnnouncements = () => poll();

export function startAnnouncements() {
  poll();
  setInterval(poll, POLL_MS);
  return poll;
}

// The page shown instead of the app while maintenance mode is on.
export function renderMaintenance(main, state) {
  document.title = "Maintenance · Stagecast";
  const ends = state?.ends_at ? new Date(state.ends_at) : null;
  replace(
    main,
    h("section", { class: "panel narrow maintenance", "aria-live": "polite" },
      h("h1", {}, "Down for maintenance"),
      h("p", {}, state?.message || "Stagecast is being worked on. It will be back shortly."),
      ends ? h("p", { class: "muted" }, `Expected back by ${ends.toLocaleString()}.`) : null,
      h("p", { class: "muted" }, "This page reloads by itself when it is over."),
    ),
  );
}
