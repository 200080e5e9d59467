// The API client: JSON in and out, the access token attached, errors as ApiError carrying
// the RFC 9457 problem (with its stable `code`).
import { accessToken, csrfToken, refresh, signedOut } from "./auth.js";
import { maintenanceStarted } from "./announcements.js";
import { uuid } from "./dom.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `The server answered ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem?.code || "UNKNOWN";
  }
}

async function readProblem(response) {
  try {
    return await response.json();
  } catch {
    return { status: response.status, title: response.statusText };
  }
}

/**
 * Call the API. `path` is under /api/v1 unless it starts with "/" and not "/api".
 * `moves: true` adds an Idempotency-Key (money-moving POSTs), so a retried click moves
 * tokens once. `withStatus: true` answers {status, body}, for routes whose 200 and 201 differ.
 */
export async function api(path, { method = "GET", body, query, moves = false, key, blob = false, withStatus = false } = {}) {
  let url = path.startsWith("/") ? path : `/api/v1/${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const headers = { Accept: "application/json" };
  // A FormData body (a KYC upload) is multipart: the browser writes its Content-Type.
  const form = typeof FormData !== "undefined" && body instanceof FormData;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  if (moves) headers["Idempotency-Key"] = key || uuid();
  // Routes that may read the refresh cookie (logout) want the CSRF token beside it.
  if (method !== "GET" && path.startsWith("auth/")) {
    const csrf = await csrfToken();
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }

  for (let attempt = 0; ; attempt++) {
    const token = await accessToken();
    const response = await fetch(url, {
      method,
      headers: token ? { ...headers, Authorization: `Bearer ${token}` } : headers,
      body: body === undefined || form ? body : JSON.stringify(body),
      credentials: "same-origin",
    });
    if (response.status === 204) return null;
    if (response.ok) {
      const answer = await (blob ? response.blob() : response.json());
      return withStatus ? { status: response.status, body: answer } : answer;
    }
    const problem = await readProblem(response);
    if (response.status === 503 && problem.code === "MAINTENANCE") maintenanceStarted(problem.maintenance);
    if (response.status === 401 && token && attempt === 0) {
      if (problem.code === "INVALID_TOKEN" && (await refresh(token))) continue;
      if (problem.code === "SESSION_REVOKED") signedOut();
    }
    throw new ApiError(response.status, problem);
  }
}

export const get = (path, query) => api(path, { query });
export const post = (path, body, options = {}) => api(path, { method: "POST", body, ...options });
export const patch = (path, body) => api(path, { method: "PATCH", body });
export const put = (path, body) => api(path, { method: "PUT", body });
export const del = (path, body) => api(path, { method: "DELETE", body });
