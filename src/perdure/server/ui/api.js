// The HTTP API client: bearer token from localStorage, JSON in and out, and the API's
// error bodies ({"error": {"code", "message"}}) turned into ApiError with that message.

const TOKEN_KEY = "perdure.token";
const BASE = new URL("api/v1/", document.baseURI);

/** An API call that did not succeed; `message` is the server's own explanation. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return ""; // storage disabled: the user is asked again on each load
  }
}

export function setToken(value) {
  try {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: nothing to keep */
  }
}

// Views learn of a refused token from this event, so that one prompt serves them all.
export const events = new EventTarget();

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = `${response.status} ${response.statusText || "error"}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = String(body.error.code || code);
      message = String(body.error.message || message);
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(response.status, code, message);
}

/**
 * Call the API: api("runs", {query: {status: "failed"}}) or
 * api("runs/ID/retry", {method: "POST", body: {}}). Resolves to the decoded JSON body;
 * rejects with ApiError (status 0 when the server could not be reached).
 */
export async function api(path, { method = "GET", query = null, body = undefined } = {}) {
  const url = new URL(path, BASE);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "unreachable", `The server could not be reached (${err.message}).`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) {
      error.token = bearer; // a late answer to an older token is not news
      events.dispatchEvent(new CustomEvent("unauthorized", { detail: error }));
    }
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

/** A path segment: run ids and names may hold any character. */
export const seg = (value) => encodeURIComponent(String(value));
