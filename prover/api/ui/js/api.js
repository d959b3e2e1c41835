// @ts-check
// The API client: every call the console makes goes through `api` (JSON) or `apiFile`
// (a file), with the key as a bearer token; `listPage` reads one page of a list.
// The API key lives in sessionStorage: gone when the browser session ends.

const KEY_STORE = "prover.apiKey";
export const PAGE_SIZE = 20; // items per page of a list (the API's default)

/**
 * A job's error, or any error the API answers with: a code, a message, and details.
 * @typedef {{code: string, message: string, [detail: string]: unknown}} ErrorObject
 */

/**
 * A job (GET /v1/jobs/ID, and the items of GET /v1/jobs).
 * @typedef {object} Job
 * @property {string} job_id
 * @property {string} kind
 * @property {string} subject_id
 * @property {string} state
 * @property {string} phase
 * @property {number} progress
 * @property {ErrorObject | null} error
 * @property {Record<string, any> | null} result
 * @property {number} attempts
 * @property {number} [retries]
 * @property {string | null} [worker]
 * @property {Record<string, number>} timings
 */

/**
 * One page of a list: newest first; `next_cursor` is the next page's `cursor` (null on the
 * last page).
 * @template T
 * @typedef {{items: T[], next_cursor: number | null}} Page
 */

/**
 * The items of the lists (GET /v1/circuits, /v1/models, /v1/proofs, /v1/training/runs).
 * @typedef {{circuit_id: string, model_name: string, state: string, created_at: Time}} CircuitItem
 * @typedef {{model_id: string, name: string, parameter_count: number, created_at: Time}} ModelItem
 * @typedef {{proof_id: string, state: string, circuit_id: string, created_at: Time}} ProofItem
 * @typedef {{run_id: string, circuit_id: string, state: string, steps_total: number,
 *   steps_done: number}} RunItem
 * @typedef {string | null} Time when this key asked for it (ISO 8601, UTC)
 */

/**
 * @typedef {object} CallOptions
 * @property {string} [method]
 * @property {unknown} [json] a JSON body
 * @property {FormData} [form] a multipart body
 * @property {AbortSignal} [signal]
 * @property {string | null} [key] another key than the stored one (signing in)
 */

/** An answer of the API that is not a success, in the API's own words. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status (0: no answer)
   * @param {string} code
   * @param {string} message
   * @param {unknown} [body]
   */
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** @returns {string | null} the key of this browser session, if signed in */
export function apiKey() {
  return sessionStorage.getItem(KEY_STORE);
}

/** @param {string} key */
export function keepApiKey(key) {
  sessionStorage.setItem(KEY_STORE, key);
}

export function forgetApiKey() {
  sessionStorage.removeItem(KEY_STORE);
}

/**
 * Whether an error is the abort of a request or wait (the page was left).
 * @param {unknown} err
 */
export function isAbort(err) {
  return err instanceof Object && "name" in err && err.name === "AbortError";
}

/**
 * @param {string} path
 * @param {CallOptions} options
 * @returns {Promise<Response>}
 */
async function send(path, { method = "GET", json, form, signal, key } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${key ?? apiKey()}` };
  /** @type {BodyInit | undefined} */
  let body;
  if (form) body = form;
  else if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  try {
    return await fetch(path, { method, headers, body, signal });
  } catch (err) {
    if (isAbort(err)) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new ApiError(0, "unreachable", `the API did not answer (${why})`);
  }
}

/**
 * The error of an answer that is not a success, with the API's own message.
 * @param {Response} response
 * @returns {Promise<ApiError>}
 */
async function failure(response) {
  const text = await response.text();
  const data = parse(text);
  const error = data && typeof data === "object" ? data.error : null;
  if (error && typeof error.message === "string") {
    return new ApiError(response.status, error.code, error.message, data);
  }
  const what = text.trim().slice(0, 300) || response.statusText;
  return new ApiError(response.status, "http_error", `HTTP ${response.status}: ${what}`);
}

/**
 * @param {string} text
 * @returns {any} the JSON value, or null when the text is none
 */
function parse(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/**
 * A call to the API: the parsed JSON body, or an ApiError carrying the API's own words.
 * @param {string} path
 * @param {CallOptions} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  const response = await send(path, options);
  if (!response.ok) throw await failure(response);
  return parse(await response.text());
}

/**
 * A file the API serves (a proof's ezkl JSON), as a blob.
 * @param {string} path
 * @param {CallOptions} [options]
 * @returns {Promise<Blob>}
 */
export async function apiFile(path, options = {}) {
  const response = await send(path, options);
  if (!response.ok) throw await failure(response);
  return response.blob();
}

/**
 * One page of a list (GET /v1/circuits, /v1/jobs, ...): the page after `cursor` (the first
 * without one), with the list's filters in `params`.
 * @template T
 * @param {string} path
 * @param {{params?: Record<string, string>, cursor?: number | null, limit?: number,
 *   signal?: AbortSignal}} [options]
 * @returns {Promise<Page<T>>}
 */
export function listPage(path, { params = {}, cursor = null, limit = PAGE_SIZE, signal } = {}) {
  const query = new URLSearchParams({ ...params, limit: String(limit) });
  if (cursor !== null) query.set("cursor", String(cursor));
  return api(`${path}?${query}`, { signal });
}

/**
 * The service's health (GET /health): its report when it is ok or degraded (503 with the
 * same report); other failures as errors.
 * @param {AbortSignal} [signal]
 * @returns {Promise<Record<string, any>>}
 */
export async function health(signal) {
  const response = await send("/health", { signal });
  if (response.ok || response.status === 503) return parse(await response.text());
  throw await failure(response);
}

const RECONNECT_MS = 2000; // after a dropped event stream

/**
 * An event of this key's jobs (GET /v1/events).
 * @typedef {{id: number, type: string, subject_id: string, data: Job, created_at: Time}} JobEvent
 */

/**
 * Follow this key's job events (GET /v1/events, server-sent events) until `signal`
 * aborts, calling `onEvent` with each. A dropped stream is opened again after the last
 * event seen (`Last-Event-ID`), so none is missed; a refusal (4xx) ends it as an error.
 * @param {(event: JobEvent) => void} onEvent
 * @param {AbortSignal} signal
 */
export async function followEvents(onEvent, signal) {
  /** @type {number | null} */
  let last = null;
  while (!signal.aborted) {
    /** @type {Record<string, string>} */
    const headers = { Authorization: `Bearer ${apiKey()}` };
    if (last !== null) headers["Last-Event-ID"] = String(last);
    try {
      const response = await fetch("/v1/events", { headers, signal });
      if (!response.ok || !response.body) throw await failure(response);
      for await (const event of serverEvents(response.body)) {
        last = event.id;
        onEvent(event);
      }
    } catch (err) {
      if (isAbort(err)) return;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

/**
 * The events of a text/event-stream body: each block's `data:` lines, parsed as JSON.
 * @param {ReadableStream<Uint8Array>} body
 * @returns {AsyncGenerator<JobEvent>}
 */
async function* serverEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
      if (data.length) yield JSON.parse(data.join("\n"));
    }
  }
}
