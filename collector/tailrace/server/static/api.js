// The native API from the browser: the bearer token (kept in sessionStorage), JSON reads, and
// Server-Sent Events read with fetch(), because EventSource cannot send an Authorization header.

const TOKEN_KEY = "tailrace.token";

export class AuthRequired extends Error {}

// A valid token that may not read this namespace: another token may.
export class Forbidden extends AuthRequired {}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  // Worth retrying: the server is busy or restarting, not refusing the request.
  get transient() {
    return this.status === 429 || this.status >= 500;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra) {
  const all = { ...extra };
  const bearer = token();
  if (bearer) all.Authorization = `Bearer ${bearer}`;
  return all;
}

export function url(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

const PLURALS = { function: "functions", pipeline: "pipelines", pod: "pods" };

// "function/hello" | "pipeline/x" | "pod/x" | "x" (a pod, as kubectl reads a bare name).
export function parseTarget(text) {
  const value = (text || "").trim();
  const slash = value.indexOf("/");
  if (slash < 0) return value ? { kind: "pod", name: value } : null;
  const kind = value.slice(0, slash).toLowerCase().replace(/s$/, "");
  const name = value.slice(slash + 1);
  if (!PLURALS[kind] || !name) return null;
  return { kind, name };
}

export function logsPath(namespace, target) {
  const ns = encodeURIComponent(namespace);
  return `/v1/namespaces/${ns}/${PLURALS[target.kind]}/${encodeURIComponent(target.name)}/logs`;
}

export function statsPath(namespace, target) {
  if (target.kind === "pod") return null;
  return logsPath(namespace, target).replace(/\/logs$/, "/stats");
}

async function failure(response) {
  let message = response.statusText;
  try {
    const body = await response.json();
    if (body && body.message) message = body.message;
  } catch {
    // not JSON: keep the status text
  }
  if (response.status === 401) return new AuthRequired(message);
  if (response.status === 403) return new Forbidden(message);
  return new ApiError(response.status, message);
}

export async function getJson(path, params, signal) {
  const response = await fetch(url(path, params), {
    headers: headers({ Accept: "application/json" }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

// Yields {id, event, data} for each SSE event of a GET, until the server ends the body.
// onOpen runs once the server has accepted the stream, before any event arrives.
export async function* events(path, params, { lastEventId, signal, onOpen } = {}) {
  const extra = { Accept: "text/event-stream", "Cache-Control": "no-cache" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(url(path, params), { headers: headers(extra), signal });
  if (!response.ok) throw await failure(response);
  if (onOpen) onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: "", event: "", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // Lines end in \n, \r\n or \r; the last piece may be incomplete, so it stays buffered.
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) yield { id: event.id, event: event.event, data: event.data.join("\n") };
        event = { id: "", event: "", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the server's heartbeat
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "data") event.data.push(text);
      else if (field === "event") event.event = text;
      else if (field === "id") event.id = text;
    }
  }
}
