// @ts-check
// DOM helpers. Every element is built with the DOM (no innerHTML): what the API returns
// is text.

import { ApiError, isAbort } from "./api.js";
import { fmt, short } from "./format.js";

/** The page's main region: each page renders into it. */
export const main = /** @type {HTMLElement} */ (document.getElementById("main"));

/**
 * What a page gets from the router: the signal that aborts its requests when it is left,
 * and a way to render the page again (its subject changed: a compile ended).
 * @typedef {{signal: AbortSignal, rerender: () => void}} PageContext
 */

/**
 * A child of an element: a node, text, or a list of those (nothing for null, undefined
 * and false).
 * @typedef {Node | string | number | false | null | undefined} Leaf
 * @typedef {Leaf | Leaf[]} Child
 */

/**
 * An element with attributes (`on...`: an event listener; `class`; a property where the
 * element has one and the value is not a string; else an attribute) and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) {
      el.addEventListener(name.slice(2), /** @type {EventListener} */ (value));
    } else if (name === "class") el.className = String(value);
    else if (name in el && typeof value !== "string") /** @type {any} */ (el)[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/**
 * @template {Element} E
 * @param {E} el
 * @param {Child[]} children
 * @returns {E}
 */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/**
 * A cell or a fact: a node as it is, any other value as text.
 * @param {unknown} value
 * @returns {Node | string}
 */
function shown(value) {
  return value instanceof Node ? value : fmt(value);
}

/**
 * A description list of [term, value] pairs (values may be nodes); undefined values
 * skipped.
 * @param {[string, unknown][]} pairs
 * @param {string} label
 */
export function facts(pairs, label) {
  const dl = h("dl", { class: "facts", "aria-label": label });
  for (const [term, value] of pairs) {
    if (value === undefined) continue;
    dl.append(h("dt", {}, term), h("dd", {}, shown(value)));
  }
  return dl;
}

/**
 * A table inside a scrolling region; on narrow screens each row becomes a card whose
 * cells are labelled by their column (data-label), with explicit roles kept for screen
 * readers (a table restyled as blocks loses its implicit ones).
 * @param {string} caption
 * @param {string[]} columns
 * @param {unknown[][]} rows
 */
export function table(caption, columns, rows) {
  const head = h(
    "tr",
    { role: "row" },
    columns.map((c) => h("th", { scope: "col", role: "columnheader" }, c)),
  );
  const body = rows.map((cells) =>
    h(
      "tr",
      { role: "row" },
      cells.map((c, i) => h("td", { role: "cell", "data-label": columns[i] }, shown(c))),
    ),
  );
  return h(
    "div",
    { class: "scroll", role: "region", "aria-label": caption, tabindex: "0" },
    h(
      "table",
      { role: "table" },
      h("caption", {}, caption),
      h("thead", { role: "rowgroup" }, head),
      h("tbody", { role: "rowgroup" }, body),
    ),
  );
}

/**
 * A section headed by `title` (its accessible name).
 * @param {string} title
 * @param {...Child} children
 */
export function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

/**
 * @param {string} href
 * @param {string} text
 */
export function link(href, text) {
  return h("a", { href }, text);
}

/**
 * A link to one item, showing a short id; its accessible name holds the whole id, so that
 * a screen reader (or a test) can find it by either.
 * @param {string} where the list's route ("circuits")
 * @param {string} noun
 * @param {string} id
 */
export function idLink(where, noun, id) {
  return h(
    "a",
    { href: `#/${where}/${id}`, "aria-label": `${noun} ${id}`, title: id },
    `${noun} ${short(id)}`,
  );
}

/**
 * A state, styled by its name.
 * @param {string} state
 */
export function stateBadge(state) {
  return h("span", { class: `state state-${state}` }, state);
}

/**
 * An error, in the API's words (with its code) where the API gave them.
 * @param {unknown} err
 */
export function errorBox(err) {
  const box = h("div", { class: "error", role: "alert" });
  if (err instanceof Error) {
    box.append(h("span", { class: "error-message" }, err.message));
    if (err instanceof ApiError && err.code) {
      box.append(" ", h("code", { class: "error-code" }, err.code));
    }
  } else {
    box.append(String(err));
  }
  return box;
}

/**
 * A job's error object ({code, message, ...}) exactly as the API words it.
 * @param {{code: string, message?: string}} error
 */
export function jobErrorBox(error) {
  return errorBox(new ApiError(0, error.code, error.message || JSON.stringify(error)));
}

export function devSrsWarning() {
  return h(
    "p",
    { class: "warning", role: "note" },
    h("strong", {}, "Development SRS: "),
    "made on this machine, NOT for production; set PROVER_SRS_PATH to a ceremony SRS file.",
  );
}

/**
 * The page's heading (and the document's title); focused, for screen readers.
 * @param {string} text
 * @param {...Child} extra
 */
export function pageTitle(text, ...extra) {
  document.title = `${text} · prover console`;
  const heading = h("h1", { tabindex: "-1" }, text, ...extra);
  main.append(heading);
  heading.focus({ preventScroll: true });
  return heading;
}

/** @param {unknown} value */
export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/**
 * Run an action from a button: disabled meanwhile, errors shown in `status`.
 * @param {HTMLButtonElement} button
 * @param {HTMLElement} status
 * @param {() => Promise<void>} action
 */
export async function act(button, status, action) {
  button.disabled = true;
  status.replaceChildren();
  try {
    await action();
  } catch (err) {
    if (!isAbort(err)) status.append(errorBox(err));
  } finally {
    button.disabled = false;
  }
}

/**
 * A button that runs `action` through `act`: disabled meanwhile, errors in `status`.
 * @param {string} label
 * @param {HTMLElement} status
 * @param {() => Promise<void>} action
 * @param {Record<string, unknown>} [attrs]
 * @returns {HTMLButtonElement}
 */
export function actionButton(label, status, action, attrs = {}) {
  const button = h(
    "button",
    { type: "button", ...attrs, onclick: () => act(button, status, action) },
    label,
  );
  return button;
}

/**
 * Resolves after `ms`, or rejects (AbortError) when the page is left.
 * @param {number} ms
 * @param {AbortSignal} signal
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    };
    signal.addEventListener("abort", stop, { once: true });
  });
}
