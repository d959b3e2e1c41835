// @ts-check
// The jobs of one kind about one subject, with the button that starts another: a circuit's
// deployments, a proof's on-chain submissions. The API filters the jobs
// (GET /v1/jobs?kind=K&subject_id=ID) and pages them.

import { api } from "./api.js";
import { actionButton, h, section } from "./dom.js";
import { followJob } from "./job-view.js";
import { pagedList } from "./lists.js";

/** @typedef {import("./api.js").Job} Job */

/**
 * @typedef {object} SubjectJobsOptions
 * @property {string} title the section's heading
 * @property {string} caption the table's caption
 * @property {string} kind the jobs' kind (deploy, submit)
 * @property {string} subjectId the circuit's or proof's id
 * @property {string} noun what the "More" button loads more of
 * @property {string[]} columns
 * @property {(job: Job) => unknown[]} row
 * @property {string} empty the text shown while there is no such job
 * @property {string} action the button's label
 * @property {string} post where the button POSTs (an empty JSON body): answers a job_id
 */

/**
 * @param {SubjectJobsOptions} options
 * @param {AbortSignal} signal
 */
export async function subjectJobsSection(options, signal) {
  const { title, caption, kind, subjectId, noun, columns, row, empty, action, post } = options;
  const list = await pagedList(
    {
      path: "/v1/jobs",
      params: { kind, subject_id: subjectId },
      caption,
      noun,
      columns,
      row,
      empty: h("p", {}, empty),
    },
    signal,
  );
  const status = h("div");
  const button = actionButton(action, status, async () => {
    const accepted = await api(post, { method: "POST", json: {}, signal });
    await followJob(status, accepted.job_id, signal);
    await list.refresh();
  });
  return section(title, list.element, h("p", {}, button), status);
}
