// @ts-check
// The proof pages: this key's proofs (#/proofs), and a proof (#/proofs/ID): followed while
// it is proven, then its outputs, verification, download, batch or segments, and its
// on-chain submissions.

import { api, apiFile } from "./api.js";
import {
  actionButton,
  devSrsWarning,
  facts,
  h,
  idLink,
  jobErrorBox,
  link,
  main,
  pageTitle,
  section,
  stateBadge,
  table,
} from "./dom.js";
import { bytes, fmt, seconds, short } from "./format.js";
import { followJob } from "./job-view.js";
import { pagedList } from "./lists.js";
import { subjectJobsSection } from "./subject-jobs.js";

/** @typedef {import("./api.js").Job} Job */
/** @typedef {import("./api.js").ProofItem} ProofItem */
/** @typedef {import("./dom.js").PageContext} PageContext */
/**
 * A proof as GET /v1/proofs/ID answers (its fields depend on its state and type).
 * @typedef {Record<string, any>} Proof
 */

/** @param {PageContext} context */
export async function proofsPage({ signal }) {
  pageTitle("Proofs");
  const list = await pagedList(
    /** @type {import("./lists.js").ListOptions<ProofItem>} */ ({
      path: "/v1/proofs",
      caption: "Proofs",
      noun: "proofs",
      columns: ["Proof", "State", "Circuit", "Asked"],
      row: (p) => [
        idLink("proofs", "Proof", p.proof_id),
        stateBadge(p.state),
        link(`#/circuits/${p.circuit_id}`, short(p.circuit_id)),
        p.created_at,
      ],
      empty: h("p", {}, "No proofs yet. Open a ready circuit to request one."),
    }),
    signal,
  );
  main.append(list.element);
}

/**
 * @param {unknown} value
 * @returns {number[]}
 */
function flatNumbers(value) {
  return Array.isArray(value)
    ? value.flatMap(flatNumbers)
    : typeof value === "number"
      ? [value]
      : [];
}

/**
 * @param {unknown} value
 * @returns {number[]}
 */
function shapeOf(value) {
  return Array.isArray(value) ? [value.length, ...shapeOf(value[0])] : [];
}

/** @param {Proof} proof */
function outputsSection(proof) {
  const values = flatNumbers(proof.outputs);
  const argmax = values.length > 1 ? values.indexOf(Math.max(...values)) : null;
  const list = h(
    "ol",
    { class: "values", start: 0, "aria-label": "Output values" },
    values.map((v, i) =>
      h(
        "li",
        { class: i === argmax ? "top" : null },
        h("span", { class: "index" }, String(i)),
        " ",
        fmt(v),
      ),
    ),
  );
  return section(
    "Outputs",
    argmax !== null
      ? facts(
          [["Argmax", h("span", { "data-testid": "argmax" }, String(argmax))]],
          "Outputs summary",
        )
      : null,
    list,
    h(
      "p",
      { class: "muted" },
      "Rescaled fixed-point outputs of the circuit, shaped ",
      fmt(shapeOf(proof.outputs)),
      ".",
    ),
  );
}

/** @param {Proof} proof */
function instancesSection(proof) {
  /** @type {string[][]} */
  const groups = proof.instances || [];
  const rows = groups.flatMap((group, g) =>
    group.map((v, i) => [`${g}.${i}`, h("code", { class: "hash" }, v)]),
  );
  const details = h(
    "details",
    { open: rows.length <= 8 },
    h("summary", {}, `${rows.length} public instances (field elements)`),
    table("Public instances", ["Instance", "Value"], rows),
  );
  return section("Public instances", details);
}

/**
 * @param {string} id
 * @param {AbortSignal} signal
 */
function verifyControls(id, signal) {
  const result = h("output", {
    id: "verify-result",
    class: "verdict",
    "aria-live": "polite",
    "aria-label": "Verification result",
  });
  const detail = h("p", { class: "muted" });
  const status = h("div");
  const button = actionButton("Verify", status, async () => {
    result.textContent = "";
    detail.textContent = "verifying…";
    const answer = await api(`/v1/proofs/${id}/verify`, { method: "POST", signal });
    result.textContent = answer.valid ? "valid" : "invalid";
    result.className = `verdict ${answer.valid ? "ok" : "bad"}`;
    detail.textContent = [
      answer.reason,
      answer.verify_s !== undefined ? `ezkl verify ${seconds(answer.verify_s)}` : null,
    ]
      .filter(Boolean)
      .join("; ");
  });
  return section("Verification", h("p", { class: "row" }, button, " ", result), detail, status);
}

/**
 * The button that saves the proof's ezkl JSON (of one segment, for a composite proof).
 * @param {string} id
 * @param {AbortSignal} signal
 * @param {number} [segment]
 */
function downloadButton(id, signal, segment) {
  const status = h("div");
  const query = segment === undefined ? "" : `?segment=${segment}`;
  const suffix = segment === undefined ? "" : `-segment-${segment}`;
  const label =
    segment === undefined ? "Download proof (ezkl JSON)" : `Download segment ${segment} proof`;
  const button = actionButton(label, status, async () => {
    const blob = await apiFile(`/v1/proofs/${id}/ezkl${query}`, { signal });
    const url = URL.createObjectURL(blob);
    const name = `proof-${short(id)}${suffix}.json`;
    const anchor = h("a", { href: url, download: name, hidden: true });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  return [h("p", {}, button), status];
}

/**
 * A submit job as a row: whether the chain accepted the result, its transaction and gas.
 * @param {Job} job
 */
function submissionRow(job) {
  const r = job.result || {};
  return [
    link(`#/jobs/${job.job_id}`, short(job.job_id)),
    stateBadge(job.state),
    job.state === "succeeded"
      ? r.accepted
        ? "accepted"
        : "not accepted"
      : job.error
        ? h("span", { class: "error-text" }, job.error.message)
        : "—",
    r.tx_hash ? h("code", { class: "hash" }, r.tx_hash) : "—",
    r.gas_used,
  ];
}

/**
 * @param {string} id
 * @param {AbortSignal} signal
 */
function onchainSection(id, signal) {
  return subjectJobsSection(
    {
      title: "On-chain acceptance",
      caption: "On-chain submissions",
      kind: "submit",
      subjectId: id,
      noun: "submissions",
      columns: ["Job", "State", "Acceptance", "Transaction", "Gas"],
      row: submissionRow,
      empty: "Not submitted on chain by this key (the circuit's verifier must be deployed first).",
      action: "Submit on chain",
      post: `/v1/proofs/${id}/submissions`,
    },
    signal,
  );
}

/**
 * @param {Proof} proof
 * @param {string} id
 * @param {AbortSignal} signal
 */
function proofSection(proof, id, signal) {
  return [
    instancesSection(proof),
    section(
      "Proof",
      facts([["Size", bytes(proof.proof_bytes)]], "Proof size"),
      ...downloadButton(id, signal),
      h(
        "details",
        {},
        h("summary", {}, "Proof bytes (hex)"),
        h("pre", { class: "hex" }, proof.proof),
      ),
    ),
  ];
}

/**
 * A composite proof's segments: one ezkl proof (and download) each.
 * @param {Proof} proof
 * @param {AbortSignal} signal
 */
function segmentsSection(proof, signal) {
  /** @type {Record<string, any>[]} */
  const segments = proof.segments;
  const rows = segments.map((s) => [
    String(s.index),
    link(`#/circuits/${s.circuit_id}`, short(s.circuit_id)),
    seconds((s.timings || {}).prove_s),
    s.worker || "",
    h("div", {}, ...downloadButton(proof.proof_id, signal, s.index)),
  ]);
  return section(
    "Segments",
    h("p", {}, "One ezkl proof per segment, linked by commitments to the tensors at each cut."),
    table("Segments", ["Segment", "Circuit", "Prove", "Worker", "Proof"], rows),
  );
}

/**
 * A batch proof's N results.
 * @param {Proof} proof
 */
function batchSection(proof) {
  /** @type {Record<string, any>[]} */
  const results = proof.results;
  const rows = results.map((r) => [
    String(r.index),
    h("code", {}, JSON.stringify(r.outputs)),
    h("code", { class: "hash" }, r.result_key),
  ]);
  return section(
    "Batch results",
    table("Batch results", ["Item", "Outputs", "Result key on chain"], rows),
  );
}

/**
 * One request proven in a batch: its batch proof and place in it.
 * @param {Proof} proof
 */
function batchedSection(proof) {
  const b = proof.batch;
  return section(
    "Proven in a batch",
    h(
      "p",
      {},
      "This request was proven together with other requests of this key in one batch proof.",
    ),
    facts(
      [
        ["Batch proof", link(`#/proofs/${b.proof_id}`, short(b.proof_id))],
        ["Position", `${b.position + 1} of ${b.size} (${b.requests} requests)`],
        ["Result key on chain", h("code", { class: "hash" }, b.result_key)],
      ],
      "Batch",
    ),
  );
}

/**
 * @param {PageContext} context
 * @param {string} id
 */
export async function proofPage({ signal, rerender }, id) {
  pageTitle(`Proof ${short(id)}`);
  /** @type {Proof} */
  const proof = await api(`/v1/proofs/${id}`, { signal });
  main.append(
    facts(
      [
        ["Proof id", h("code", { class: "hash" }, proof.proof_id)],
        ["State", stateBadge(proof.state)],
        ["Circuit", link(`#/circuits/${proof.circuit_id}`, short(proof.circuit_id))],
        ["Asked", proof.created_at],
        [
          "Prove job",
          proof.job_id ? link(`#/jobs/${proof.job_id}`, short(proof.job_id)) : undefined,
        ],
      ],
      "Proof",
    ),
  );
  if (proof.state === "failed" && proof.error) main.append(jobErrorBox(proof.error));
  if (proof.state !== "ready") {
    if (proof.state === "failed" || !proof.job_id) return;
    const live = section("Proving");
    main.append(live);
    const job = await followJob(live, proof.job_id, signal);
    if (job.state === "succeeded") rerender();
    return;
  }
  /** @type {[string, unknown][]} */
  const timings = Object.entries(proof.timings || {});
  main.append(
    proof.dev_srs ? devSrsWarning() : "",
    verifyControls(id, signal),
    outputsSection(proof),
    section(
      "Timings",
      table(
        "Timings",
        ["Step", "Seconds"],
        timings.map(([k, v]) => [k.replace(/_s$/, ""), seconds(v)]),
      ),
    ),
    proof.results ? batchSection(proof) : "",
    proof.batch ? batchedSection(proof) : "",
    ...(proof.segments ? [segmentsSection(proof, signal)] : proofSection(proof, id, signal)),
  );
  main.append(await onchainSection(id, signal));
}
