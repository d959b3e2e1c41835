// @ts-check
// The jobs pages: this key's jobs (#/jobs), refreshed while one runs, and a job
// (#/jobs/ID), followed live until it ends.

import { h, idLink, json, link, main, pageTitle, section, sleep, stateBadge } from "./dom.js";
import { short } from "./format.js";
import { TERMINAL, followJob, subjectLink } from "./job-view.js";
import { pagedList } from "./lists.js";

/** @typedef {import("./api.js").Job} Job */
/** @typedef {import("./dom.js").PageContext} PageContext */

const LIST_REFRESH_MS = 2000;

/** The page of a job's subject, and its link's text, by the job's kind. */
const NEXT = /** @type {Record<string, [string, string]>} */ ({
  compile: ["circuits", "Open circuit"],
  prove: ["proofs", "Open proof"],
  submit: ["proofs", "Open proof"],
  deploy: ["circuits", "Open circuit"],
  train_step: ["runs", "Open training run"],
  ledger: ["runs", "Open training run"],
});

/** @param {PageContext} context */
export async function jobsPage({ signal }) {
  pageTitle("Jobs");
  const list = await pagedList(
    /** @type {import("./lists.js").ListOptions<Job>} */ ({
      path: "/v1/jobs",
      caption: "Jobs",
      noun: "jobs",
      columns: ["Job", "Kind", "Subject", "State", "Phase", "Progress", "Error"],
      row: (j) => [
        idLink("jobs", "Job", j.job_id),
        j.kind,
        subjectLink(j.kind, j.subject_id),
        stateBadge(j.state),
        j.phase,
        h("progress", {
          max: 1,
          value: j.progress,
          "aria-label": `Progress of job ${short(j.job_id)}`,
        }),
        j.error ? h("span", { class: "error-text" }, j.error.message) : "",
      ],
      empty: h("p", {}, "No jobs yet."),
      live: true,
    }),
    signal,
  );
  main.append(list.element);
  while (list.items().some((j) => !TERMINAL.has(j.state))) {
    await sleep(LIST_REFRESH_MS, signal);
    await list.refresh();
  }
}

/**
 * @param {PageContext} context
 * @param {string} id
 */
export async function jobPage({ signal }, id) {
  pageTitle(`Job ${short(id)}`);
  const job = await followJob(main, id, signal);
  const next = NEXT[job.kind];
  if (job.state === "succeeded" && next) {
    const [where, text] = next;
    const subject = link(`#/${where}/${job.subject_id}`, `${text} ${short(job.subject_id)}`);
    main.append(h("p", { class: "next" }, subject));
  }
  if (job.result) main.append(section("Result", json(job.result)));
}
