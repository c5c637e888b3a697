// The JSON API: every answer parsed, every error thrown as an ApiError carrying the server's
// message and the field it names.

export class ApiError extends Error {
  constructor(status, message, field = "") {
    super(message);
    this.status = status;
    this.field = field;
  }
}

let csrfToken = "";

export function useCsrfToken(token) {
  csrfToken = token;
}

async function answer(response) {
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (response.status === 401) {
    // The session ended (expired, or the server restarted): sign in again.
    window.location.assign("/signin");
  }
  if (!response.ok) throw new ApiError(response.status, body.error || `HTTP ${response.status}`, body.field || "");
  return body;
}

export async function get(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const url = query.size ? `${path}?${query}` : path;
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch {
    throw new ApiError(0, "the server cannot be reached");
  }
  return answer(response);
}

export async function post(path, body = {}) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "the server cannot be reached");
  }
  return answer(response);
}

export async function session() {
  const response = await fetch("/api/session", { credentials: "same-origin" });
  if (response.status === 401) return null;
  return answer(response);
}
