// The app: a header, and a router that renders one page module into <main>.
import "./styles.css";
import { post } from "./api.js";
import { currentUser, isStaff, onAuthChange, refresh, signedOut } from "./auth.js";
import { h, replace, toast, errorBox } from "./dom.js";
import * as home from "./pages/home.js";
import * as account from "./pages/account.js";
import * as search from "./pages/search.js";
import * as channel from "./pages/channel.js";
import * as vod from "./pages/vod.js";
import * as clip from "./pages/clip.js";
import * as clips from "./pages/clips.js";
import * as golive from "./pages/golive.js";
import * as dashboard from "./pages/dashboard.js";
import * as wallet from "./pages/wallet.js";
import * as settings from "./pages/settings.js";
import * as tournaments from "./pages/tournaments.js";
import * as tournament from "./pages/tournament.js";
import * as admin from "./pages/admin.js";
import { createBell } from "./bell.js";
import { currentMaintenance, onMaintenanceChange, renderMaintenance, startAnnouncements } from "./announcements.js";

const ROUTES = [
  [/^\/$/, home],
  [/^\/browse$/, home],
  [/^\/login$/, account, { mode: "login" }],
  [/^\/signup$/, account, { mode: "signup" }],
  [/^\/search$/, search],
  [/^\/wallet$/, wallet],
  [/^\/settings$/, settings],
  [/^\/dashboard$/, dashboard],
  [/^\/dashboard\/live$/, golive],
  [/^\/vods\/([^/]+)$/, vod],
  [/^\/tournaments$/, tournaments],
  [/^\/tournaments\/([^/]+)$/, tournament],
  [/^\/clips$/, clips],
  [/^\/admin(?:\/([a-z]+))?$/, admin],
  [/^\/clips\/([^/]+)$/, clip],
  [/^\/embed\/clips\/([^/]+)$/, clip, { embed: true }],
  [/^\/([A-Za-z0-9][A-Za-z0-9_-]{2,31})$/, channel],
];

let cleanup = null;
let showingMaintenance = false;

// Whether this page is the maintenance page now. The sign-in page stays: admins sign in during
// maintenance (others are told why not); admins keep the whole app.
function maintenanceShown(pathname) {
  return Boolean(currentMaintenance()) && currentUser()?.role !== "admin" && pathname !== "/login";
}
let rendering = 0;
let moveFocus = false;

export function navigate(url, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  moveFocus = true; // keyboard and screen-reader users land on the new page's heading
  render();
}

function match(pathname) {
  for (const [pattern, page, extra] of ROUTES) {
    const found = pathname.match(pattern);
    if (found) return { page, params: found.slice(1).map(decodeURIComponent), extra: extra || {} };
  }
  return null;
}

function notFound(main) {
  document.title = "Not found · Stagecast";
  replace(
    main,
    h("section", { class: "panel narrow" },
      h("h1", {}, "Nothing here"),
      h("p", {}, "This page does not exist, or the channel was renamed."),
      h("a", { href: "/", class: "button" }, "Back to the live streams"),
    ),
  );
}

async function render() {
  const main = document.getElementById("main");
  const ticket = ++rendering;
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // a page's clean-up failing must not stop the next page
    }
    cleanup = null;
  }
  const url = new URL(location.href);
  const route = match(url.pathname);
  renderHeader();
  const maintenance = currentMaintenance();
  showingMaintenance = maintenanceShown(url.pathname);
  if (showingMaintenance) return renderMaintenance(main, maintenance);
  if (!route) return notFound(main);
  const context = {
    main,
    params: route.params,
    query: url.searchParams,
    navigate,
    ...route.extra,
  };
  try {
    const done = await route.page.render(context);
    if (ticket !== rendering) {
      if (typeof done === "function") done(); // the user moved on while this page loaded
      return;
    }
    cleanup = typeof done === "function" ? done : null;
  } catch (error) {
    if (ticket !== rendering) return;
    if (error?.status === 404) return notFound(main);
    replace(main, h("section", { class: "panel narrow" }, h("h1", {}, "Could not load this page"), errorBox(error)));
  }
  const heading = main.querySelector("h1");
  if (heading && moveFocus) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  moveFocus = false;
}

// The bell lives as long as the session: the header is drawn again on every page, the bell
// (its socket, its list) is not.
let bell = null;
function bellFor(user) {
  if (bell && bell.userId !== user?.id) {
    bell.destroy();
    bell = null;
  }
  if (user && !bell) bell = { ...createBell(), userId: user.id };
  return bell?.element || null;
}

function renderHeader() {
  const header = document.getElementById("site-header");
  const user = currentUser();
  const notifications = bellFor(user);
  const here = location.pathname;
  const link = (href, text) =>
    h("a", { href, "aria-current": here === href ? "page" : null }, text);
  const searchInput = h("input", {
    type: "search",
    name: "q",
    placeholder: "Search streams, channels, people",
    "aria-label": "Search",
    value: here === "/search" ? new URL(location.href).searchParams.get("q") || "" : "",
  });
  replace(
    header,
    h("a", { href: "/", class: "brand", "aria-label": "Stagecast home" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "▶"), "Stagecast"),
    h(
      "form",
      {
        class: "header-search",
        role: "search",
        onsubmit: (event) => {
          event.preventDefault();
          const q = searchInput.value.trim();
          if (q) navigate(`/search?q=${encodeURIComponent(q)}`);
        },
      },
      searchInput,
      h("button", { type: "submit", class: "button small" }, "Search"),
    ),
    h(
      "nav",
      { "aria-label": "Main" },
      link("/browse", "Browse"),
      link("/tournaments", "Tournaments"),
      link("/clips", "Clips"),
      user
        ? [
            link("/dashboard/live", "Go live"),
            link("/dashboard", "Dashboard"),
            link("/wallet", "Wallet"),
            isStaff(user) ? h("a", { href: "/admin", "aria-current": here.startsWith("/admin") ? "page" : null }, "Admin") : null,
            notifications,
            h("a", { href: "/settings", class: "who", title: "Your profile and sessions", "aria-current": here === "/settings" ? "page" : null }, user.display_name || user.username),
            h("button", { type: "button", class: "button small ghost", onclick: signOut }, "Sign out"),
          ]
        : [link("/login", "Sign in"), h("a", { href: "/signup", class: "button small" }, "Sign up")],
    ),
  );
}

async function signOut() {
  try {
    await post("auth/logout");
  } catch {
    // signed out here either way
  }
  signedOut();
  toast("Signed out");
  navigate("/");
}

// Links inside the app change the page without reloading it.
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.target.closest("a[href]");
  if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || !match(url.pathname)) return;
  event.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) {
    navigate(url.pathname + url.search);
  }
});

window.addEventListener("popstate", () => render());
onAuthChange(() => renderHeader());

// Maintenance beginning or ending changes the page when it changes whether the maintenance
// page is shown: a sign-in form being filled in, or an admin's console, stays as it is.
onMaintenanceChange(() => {
  if (maintenanceShown(location.pathname) !== showingMaintenance) render();
});

async function start() {
  // A session from an earlier visit whose access token expired: refresh it once, quietly.
  if (currentUser()) await refresh().catch(() => null);
  startAnnouncements();
  render();
}

start();
