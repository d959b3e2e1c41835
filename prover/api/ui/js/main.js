// @ts-check
// The prover web console: a client of the public HTTP API and nothing else. This module
// routes the URL's fragment to a page: #/circuits, #/circuits/ID, #/jobs, #/jobs/ID,
// #/proofs, #/proofs/ID, #/runs, #/runs/ID, #/workers, #/upload (the sign-in page without
// a key).

import { apiKey, forgetApiKey, isAbort } from "./api.js";
import { circuitPage, circuitsPage } from "./circuits.js";
import { errorBox, main } from "./dom.js";
import { jobPage, jobsPage } from "./jobs.js";
import { proofPage, proofsPage } from "./proofs.js";
import { runPage, runsPage } from "./runs.js";
import { signInPage } from "./sign-in.js";
import { uploadPage } from "./upload.js";
import { workersPage } from "./workers.js";

/** @typedef {import("./dom.js").PageContext} PageContext */
/**
 * A page: renders into the main region; its ids are the route's groups.
 * @typedef {(context: PageContext, ...ids: string[]) => unknown} PageFn
 */

const nav = /** @type {HTMLElement} */ (document.getElementById("nav"));
/** @type {[RegExp, PageFn][]} */
const ROUTES = [
  [/^#\/circuits$/, circuitsPage],
  [/^#\/circuits\/([0-9a-zA-Z_-]+)$/, circuitPage],
  [/^#\/jobs$/, jobsPage],
  [/^#\/jobs\/([0-9a-zA-Z_-]+)$/, jobPage],
  [/^#\/proofs$/, proofsPage],
  [/^#\/proofs\/([0-9a-zA-Z_-]+)$/, proofPage],
  [/^#\/runs$/, runsPage],
  [/^#\/runs\/([0-9a-zA-Z_-]+)$/, runPage],
  [/^#\/workers$/, workersPage],
  [/^#\/upload$/, uploadPage],
];
/** @type {AbortController | null} */
let current = null; // the AbortController of the page on screen

/** @param {string} hash */
function markCurrent(hash) {
  for (const a of nav.querySelectorAll("a")) {
    const href = a.getAttribute("href");
    const here = hash === href || hash.startsWith(`${href}/`);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

/** Render the page of the URL's fragment, leaving (aborting) the one on screen. */
async function rerender() {
  if (current) current.abort();
  current = new AbortController();
  const { signal } = current;
  /** @type {PageContext} */
  const context = { signal, rerender: () => void rerender() };
  main.replaceChildren();
  main.removeAttribute("aria-busy");
  const hash = location.hash || "#/circuits";
  nav.hidden = !apiKey();
  markCurrent(hash);
  if (!apiKey()) return signInPage(context);
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    location.replace("#/circuits");
    return;
  }
  const [pattern, page] = route;
  const ids = (hash.match(pattern) || []).slice(1);
  main.setAttribute("aria-busy", "true");
  try {
    await page(context, ...ids);
  } catch (err) {
    if (isAbort(err)) return;
    main.append(errorBox(err));
  } finally {
    if (!signal.aborted) main.removeAttribute("aria-busy");
  }
}

const signOut = /** @type {HTMLElement} */ (document.getElementById("sign-out"));
signOut.addEventListener("click", () => {
  forgetApiKey();
  rerender();
});
const skipLink = /** @type {HTMLElement} */ (document.getElementById("skip-link"));
skipLink.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", () => void rerender());
rerender();
