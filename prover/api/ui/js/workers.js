// @ts-check
// The workers page (#/workers): the pool as /health reports it, a table per host with each
// worker's queues, capacity, cache and metrics endpoint, refreshed every few seconds.

import { health, isAbort } from "./api.js";
import { errorBox, facts, h, link, main, pageTitle, section, sleep, stateBadge, table } from "./dom.js";
import { bytes } from "./format.js";

/** @typedef {import("./dom.js").PageContext} PageContext */

const REFRESH_MS = 5000;

/**
 * A worker's cache: its size and entries, against its limit when it has one.
 * @param {Record<string, any>} cache
 */
function cacheText(cache) {
  const limit = cache.limit_bytes === null ? "" : ` of ${bytes(cache.limit_bytes)}`;
  const what = cache.shared ? "cached" : "stored";
  return `${bytes(cache.bytes)}${limit} ${what} (${cache.entries} entries)`;
}

/** @param {Record<string, any>} host */
function hostSection(host) {
  const rows = host.workers.map((/** @type {Record<string, any>} */ w) => [
    w.name,
    stateBadge(w.answering ? "answering" : "silent"),
    w.queues.join(", "),
    `${w.concurrency} × ${bytes(w.memory_bytes)}`,
    w.gpu === null ? `${w.cpus} CPUs` : `GPU ${w.gpu}, ${w.cpus} CPUs`,
    cacheText(w.cache),
    w.metrics_url ? link(w.metrics_url, w.metrics_url) : "through the API's /metrics",
  ]);
  const columns = ["Worker", "State", "Queues", "Jobs × memory", "Cores", "Cache", "Metrics"];
  return section(`Host ${host.host}`, table(`Workers on ${host.host}`, columns, rows));
}

/** @param {Record<string, any>} report */
function render(report) {
  const overview = facts(
    [
      ["Status", stateBadge(report.status)],
      ["Database", report.database],
      ["Broker", report.broker],
      ["Workers answering", report.workers],
      ["Hosts", report.hosts.length],
    ],
    "Service health",
  );
  const hosts = report.hosts.length
    ? report.hosts.map(hostSection)
    : [h("p", {}, "No worker has described itself yet (a worker does on start).")];
  return h("div", { "data-testid": "workers" }, overview, ...hosts);
}

/** @param {PageContext} context */
export async function workersPage({ signal }) {
  pageTitle("Workers");
  const region = h("div", {}, render(await health(signal)));
  main.append(region);
  void follow(region, signal); // the page is rendered; it keeps itself current
}

/**
 * Render the report again every few seconds until the page is left.
 * @param {HTMLElement} region
 * @param {AbortSignal} signal
 */
async function follow(region, signal) {
  try {
    for (;;) {
      await sleep(REFRESH_MS, signal);
      region.replaceChildren(render(await health(signal)));
    }
  } catch (err) {
    if (!isAbort(err)) region.append(errorBox(err));
  }
}
