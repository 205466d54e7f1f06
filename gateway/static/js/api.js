// Same-origin JSON calls to the gateway. Every error becomes an ApiError carrying the envelope of docs/api.md:
// {"error": {code, message, retryable, details}}.

export class ApiError extends Error {
  constructor({ status = 0, code = "network_error", message, retryable = false, details = null } = {}) {
    super(message || "Something went wrong.");
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.details = details || {};
  }

  /** Field -> list of messages, from details.fields of a validation_error. */
  get fields() {
    return (this.details && this.details.fields) || {};
  }
}

const FALLBACK_MESSAGES = {
  0: "Could not reach KeyLM. Check your connection and try again.",
  401: "Sign in to continue.",
  403: "That request was refused.",
  404: "Not found.",
  413: "That is too large to send.",
  429: "Too many requests; slow down and try again shortly.",
  500: "Something went wrong on our side. Try again.",
  502: "The provider answered with an error.",
  503: "A KeyLM service is unavailable; try again shortly.",
};

/** Read an error envelope from a non-2xx response (or make one up for a non-JSON body). */
export async function errorFromResponse(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const envelope = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : {};
  const status = response.status;
  const message = typeof envelope.message === "string" && envelope.message
    ? envelope.message
    : FALLBACK_MESSAGES[status] || FALLBACK_MESSAGES[Math.floor(status / 100) * 100] || `Request failed (${status}).`;
  const error = new ApiError({
    status,
    code: envelope.code || `http_${status}`,
    message,
    retryable: Boolean(envelope.retryable),
    details: envelope.details || null,
  });
  const retryAfter = response.headers.get("Retry-After");
  if (retryAfter) error.retryAfter = Number(retryAfter) || retryAfter;
  return error;
}

export function networkError(cause) {
  const error = new ApiError({ status: 0, code: "network_error", message: FALLBACK_MESSAGES[0], retryable: true });
  error.cause = cause;
  return error;
}

let onUnauthenticated = () => {};
/** Called once a signed-in call answers 401 (the session ended elsewhere). */
export function setUnauthenticatedHandler(handler) {
  onUnauthenticated = handler;
}

/**
 * fetch() with JSON in and out. Returns the parsed body (null for 204); throws ApiError.
 * `raw: true` returns the Response itself when it is OK (used for the SSE stream).
 */
export async function api(method, path, { body, signal, raw = false, quiet401 = false } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: raw ? "text/event-stream, application/json" : "application/json" },
    signal,
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (cause) {
    if (cause && cause.name === "AbortError") throw cause;
    throw networkError(cause);
  }
  if (!response.ok) {
    const error = await errorFromResponse(response);
    if (error.status === 401 && !quiet401) onUnauthenticated(error);
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, options) => api("GET", path, options);
export const post = (path, body, options) => api("POST", path, { ...options, body });
export const patch = (path, body, options) => api("PATCH", path, { ...options, body });
export const del = (path, options) => api("DELETE", path, options);
