// @ts-check
// A job as the console shows it: its facts, followed live until it ends (?wait= long-poll),
// and links from a job to its subject.

import { api } from "./api.js";
import { facts, h, jobErrorBox, link, table } from "./dom.js";
import { seconds, short } from "./format.js";

/** @typedef {import("./api.js").Job} Job */

export const TERMINAL = new Set(["succeeded", "failed"]);
const WAIT_S = 1; // ?wait= of a job being followed: a fresh view at least every second

/** Where a job's subject is shown, by the job's kind. */
const SUBJECT_ROUTES = /** @type {Record<string, string>} */ ({
  compile: "circuits",
  deploy: "circuits",
  prove: "proofs",
  submit: "proofs",
  prove_segment: "proofs",
  train_step: "runs",
  ledger: "runs",
});

/**
 * A link to a job's subject (its short id as text where the console has no page for it).
 * @param {string} kindName
 * @param {string} id
 */
export function subjectLink(kindName, id) {
  const where = SUBJECT_ROUTES[kindName];
  return where ? link(`#/${where}/${id}`, short(id)) : short(id);
}

/**
 * @param {Job} job
 * @returns {Node[]}
 */
export function jobFacts(job) {
  const progress = h("progress", { max: 1, value: job.progress, "aria-label": "Progress" });
  const percent = `${Math.round(job.progress * 100)}%`;
  const timings = Object.entries(job.timings || {});
  /** @type {HTMLElement[]} */
  const nodes = [
    facts(
      [
        ["Job", link(`#/jobs/${job.job_id}`, short(job.job_id))],
        ["Kind", job.kind],
        ["Subject", subjectLink(job.kind, job.subject_id)],
        [
          "State",
          h("span", { class: `state state-${job.state}`, "data-testid": "job-state" }, job.state),
        ],
        ["Phase", h("span", { "data-testid": "job-phase" }, job.phase)],
        ["Progress", h("span", { class: "progress" }, progress, " ", percent)],
        ["Attempts", job.attempts],
        ["Retries", job.retries],
        ["Worker", job.worker],
      ],
      "Job",
    ),
  ];
  if (timings.length) {
    const rows = timings.map(([p, s]) => [p, seconds(s)]);
    nodes.push(table("Seconds per phase", ["Phase", "Seconds"], rows));
  }
  if (job.error) nodes.push(jobErrorBox(job.error));
  return nodes;
}

/**
 * Show a job and follow it until it ends (?wait= long-poll); resolves with its last view.
 * @param {HTMLElement} container
 * @param {string} jobId
 * @param {AbortSignal} signal
 * @returns {Promise<Job>}
 */
export async function followJob(container, jobId, signal) {
  const live = h("div", { class: "job", role: "status", "aria-live": "polite" });
  container.append(live);
  let wait = 0;
  for (;;) {
    /** @type {Job} */
    const job = await api(`/v1/jobs/${jobId}?wait=${wait}`, { signal });
    live.replaceChildren(...jobFacts(job));
    if (TERMINAL.has(job.state)) return job;
    wait = WAIT_S;
  }
}
