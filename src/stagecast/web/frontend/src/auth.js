// The signed-in session. The refresh token never reaches JavaScript: the server keeps it in
// an HttpOnly, SameSite=Strict cookie scoped to /api/v1. The short-lived access token (15
// minutes) and the user are kept in localStorage so that tabs share them; refreshing is done
// under a Web Lock because refresh tokens rotate and a reused one revokes the session.

const KEY = "stagecast.session";
const listeners = new Set();
let state = load();

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

function save(next) {
  state = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  for (const listener of listeners) listener(state?.user || null);
}

// Another tab signed in, refreshed or signed out.
window.addEventListener("storage", (event) => {
  if (event.key !== KEY) return;
  const before = state?.user?.id;
  state = load();
  if (state?.user?.id !== before) for (const listener of listeners) listener(state?.user || null);
});

export const currentUser = () => state?.user || null;
// The platform's staff: who may open the admin console (each section asks for its own role).
export const isStaff = (user) => ["moderator", "admin"].includes(user?.role);
export const onAuthChange = (listener) => {
  listeners.add(listener);
  return () => listeners.delete(listener);
};

export function signedIn(pair) {
  save({
    access_token: pair.access_token,
    expires_at: Date.now() + pair.expires_in * 1000,
    user: pair.user,
  });
}

export function updateUser(user) {
  if (state) save({ ...state, user });
}

export function signedOut() {
  save(null);
}

function fresh(s) {
  return s && s.expires_at - Date.now() > 30_000;
}

async function withLock(fn) {
  if (navigator.locks?.request) return navigator.locks.request("stagecast-refresh", fn);
  return fn();
}

// The refresh cookie is ambient authority, so the server wants a CSRF token beside it
// (double submit: GET /api/v1/csrf-token sets its cookie and hands it to us). Kept in memory.
let csrf = null;
export async function csrfToken({ renew = false } = {}) {
  if (csrf && !renew) return csrf;
  const response = await fetch("/api/v1/csrf-token", {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  csrf = response.ok ? (await response.json()).csrf_token : null;
  return csrf;
}

async function postRefresh(renew) {
  const token = await csrfToken({ renew });
  return fetch("/api/v1/auth/refresh", {
    method: "POST",
    credentials: "same-origin",
    headers: token ? { Accept: "application/json", "X-CSRF-Token": token } : { Accept: "application/json" },
  });
}

// Trade the refresh cookie for a new access token; null when the session is over.
// `rejected`: the token the server just refused (INVALID_TOKEN, e.g. after its signing key
// rotated): it is refreshed whatever its expiry says, unless another tab already did.
export async function refresh(rejected = null) {
  return withLock(async () => {
    const latest = load();
    if (fresh(latest) && latest.access_token !== rejected) {
      state = latest; // another tab refreshed while this one waited
      return state.access_token;
    }
    if (!latest) return null;
    let response = await postRefresh(false);
    if (response.status === 403) response = await postRefresh(true); // its cookie expired
    if (!response.ok) {
      signedOut();
      return null;
    }
    signedIn(await response.json());
    return state.access_token;
  });
}

// The access token to send now (refreshed when it is about to expire), or null.
export async function accessToken() {
  if (!state) return null;
  if (fresh(state)) return state.access_token;
  return refresh();
}
