// @ts-check
// The jobs pages: this key's jobs (#/jobs), read again whenever the key's event stream
// says a job changed, and a job (#/jobs/ID), followed live until it ends.

import { followEvents, isAbort } from "./api.js";
import {
  errorBox,
  h,
  idLink,
  json,
  link,
  main,
  pageTitle,
  section,
  stateBadge,
} from "./dom.js";
import { short } from "./format.js";
import { followJob, subjectLink } from "./job-view.js";
import { pagedList } from "./lists.js";

/** @typedef {import("./api.js").Job} Job */
/** @typedef {import("./dom.js").PageContext} PageContext */

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
  // The page is rendered; from here the key's event stream says when to read it again.
  followEvents(refresher(list.refresh, signal), signal).catch((err) => {
    if (!isAbort(err)) main.append(errorBox(err));
  });
}

/**
 * A refresh for each event, run one at a time: events that arrive during one are served
 * by one more after it (a burst of events costs two reads, not one each).
 * @param {() => Promise<void>} refresh
 * @param {AbortSignal} signal
 */
function refresher(refresh, signal) {
  let running = false;
  let again = false;
  return async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await refresh();
      } while (again && !signal.aborted);
    } catch (err) {
      if (!isAbort(err)) main.append(errorBox(err));
    } finally {
      running = false;
    }
  };
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
