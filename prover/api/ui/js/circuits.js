// @ts-check
// The pages of models and circuits: the lists (#/circuits), and a circuit (#/circuits/ID):
// its record, a proof request, its deployments.

import { api } from "./api.js";
import {
  act,
  devSrsWarning,
  facts,
  h,
  idLink,
  link,
  main,
  pageTitle,
  section,
  stateBadge,
  table,
} from "./dom.js";
import { bytes, estimateFacts, fmt, seconds, short } from "./format.js";
import { followJob } from "./job-view.js";
import { pagedList } from "./lists.js";
import { subjectJobsSection } from "./subject-jobs.js";

/** @typedef {import("./api.js").CircuitItem} CircuitItem */
/** @typedef {import("./api.js").ModelItem} ModelItem */
/** @typedef {import("./api.js").Job} Job */
/** @typedef {import("./dom.js").PageContext} PageContext */

/** @param {PageContext} context */
export async function circuitsPage({ signal }) {
  pageTitle("Models and circuits");
  const [circuits, models] = await Promise.all([
    pagedList(
      /** @type {import("./lists.js").ListOptions<CircuitItem>} */ ({
        path: "/v1/circuits",
        caption: "Circuits",
        noun: "circuits",
        columns: ["Circuit", "Model", "State", "Asked"],
        row: (c) => [
          idLink("circuits", "Circuit", c.circuit_id),
          c.model_name,
          stateBadge(c.state),
          c.created_at,
        ],
        empty: h("p", {}, "No circuits yet. ", link("#/upload", "Upload a model"), " to make one."),
      }),
      signal,
    ),
    pagedList(
      /** @type {import("./lists.js").ListOptions<ModelItem>} */ ({
        path: "/v1/models",
        caption: "Models",
        noun: "models",
        columns: ["Name", "Model id", "Parameters", "Uploaded"],
        row: (m) => [m.name, h("code", {}, short(m.model_id)), m.parameter_count, m.created_at],
        empty: h("p", {}, "No models yet."),
      }),
      signal,
    ),
  ]);
  main.append(section("Circuits", circuits.element), section("Models", models.element));
}

/**
 * The trial the search chose, if the record has a search.
 * @param {Record<string, any>} record
 * @returns {Record<string, any> | null}
 */
function chosenTrial(record) {
  const search = record.search || {};
  return (search.trials || []).find((/** @type {any} */ t) => t.name === search.chosen) || null;
}

/**
 * The record's cost-model estimate, where the service made one.
 * @param {unknown} estimate
 * @returns {[string, unknown][]}
 */
function estimatePairs(estimate) {
  if (!estimate || typeof estimate !== "object") return [];
  const pairs = estimateFacts(/** @type {Record<string, unknown>} */ (estimate));
  return pairs.map(([label, v]) => [`Estimated ${label}`, v]);
}

/**
 * A ready circuit's record: settings, accuracy, cost, inputs and outputs.
 * @param {Record<string, any>} record
 */
function circuitRecord(record) {
  const trial = chosenTrial(record);
  const accuracy = record.accuracy || {};
  /** @type {[string, unknown][]} */
  const accuracyPairs = Object.entries(accuracy).map(([k, v]) => [k.replaceAll("_", " "), v]);
  const settings = Object.entries(record.settings || {}).map(([k, v]) => [k, fmt(v)]);
  return [
    record.dev_srs ? devSrsWarning() : null,
    section(
      "Settings chosen",
      facts(
        [
          ["Logrows", h("span", { "data-testid": "logrows" }, String(record.logrows))],
          ["Strategy", record.strategy],
          ["Objective", record.objective],
          ["Chosen by the search", record.search && record.search.chosen],
          [
            "Visibility",
            record.visibility &&
              Object.entries(record.visibility)
                .map(([k, v]) => `${k} ${v}`)
                .join(", "),
          ],
          ["Reusable verifier", record.reusable_verifier],
          ["ezkl", record.ezkl_version],
        ],
        "Settings chosen",
      ),
      settings.length
        ? h(
            "details",
            {},
            h("summary", {}, "ezkl run arguments"),
            table("ezkl run arguments", ["Argument", "Value"], settings),
          )
        : null,
    ),
    section(
      "Accuracy against float",
      facts([["Tolerance", record.tolerance], ...accuracyPairs], "Accuracy against float"),
    ),
    section(
      "Cost estimate",
      facts(
        [
          ["Rows used", trial ? trial.num_rows : undefined],
          ["Estimated cost (search)", trial ? trial.est_cost : undefined],
          ["Trial proof", trial ? seconds(trial.prove_s) : undefined],
          ["Key setup", trial ? seconds(trial.setup_s) : undefined],
          ["Proving key", bytes(record.pk_bytes)],
          ["Verifying key", bytes(record.vk_bytes)],
          ["Compile time", record.timings ? seconds(record.timings.total_s) : undefined],
          ...estimatePairs(record.estimate),
        ],
        "Cost estimate",
      ),
    ),
    section(
      "Inputs and outputs",
      table(
        "Inputs and outputs",
        ["Tensor", "Name", "Shape"],
        [
          ...(record.inputs || []).map((/** @type {any} */ t) => ["input", t.name, fmt(t.shape)]),
          ...(record.outputs || []).map((/** @type {any} */ t) => ["output", t.name, fmt(t.shape)]),
        ],
      ),
    ),
  ];
}

/**
 * A deploy job as a row: its verifier's address and transaction, or its error.
 * @param {Job} job
 */
function deploymentRow(job) {
  const r = job.result || {};
  return [
    link(`#/jobs/${job.job_id}`, short(job.job_id)),
    stateBadge(job.state),
    r.verifier_address ? h("code", {}, r.verifier_address) : job.error ? job.error.message : "—",
    r.tx_hash ? h("code", { class: "hash" }, r.tx_hash) : r.reused ? "reused" : "—",
    r.chain_id,
  ];
}

/**
 * @param {string} circuitId
 * @param {AbortSignal} signal
 */
function deploymentsSection(circuitId, signal) {
  return subjectJobsSection(
    {
      title: "Deployments",
      caption: "Deployments",
      kind: "deploy",
      subjectId: circuitId,
      noun: "deployments",
      columns: ["Job", "State", "Verifier", "Transaction", "Chain"],
      row: deploymentRow,
      empty: "Not deployed by this key.",
      action: "Deploy verifier",
      post: `/v1/circuits/${circuitId}/deployments`,
    },
    signal,
  );
}

/**
 * @param {string} circuitId
 * @param {AbortSignal} signal
 */
function proofRequestForm(circuitId, signal) {
  const text = h("textarea", {
    id: "proof-input",
    rows: 6,
    spellcheck: "false",
    placeholder: '{"input_data": [[...]]}',
  });
  const file = h("input", {
    id: "proof-input-file",
    type: "file",
    accept: ".json,application/json",
  });
  const fresh = h("input", { id: "proof-fresh", type: "checkbox" });
  const status = h("div");
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (chosen) text.value = await chosen.text();
  });
  const button = h("button", { type: "submit" }, "Request proof");
  const form = h(
    "form",
    { "aria-label": "Request a proof" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "proof-input-file" }, "Input file (JSON)"),
      file,
    ),
    h("div", { class: "field" }, h("label", { for: "proof-input" }, "Input (JSON)"), text),
    h(
      "div",
      { class: "check" },
      fresh,
      h("label", { for: "proof-fresh" }, "Prove again even if this input was proven"),
    ),
    h("p", {}, button),
    status,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(button, status, async () => {
      let input;
      try {
        input = JSON.parse(text.value);
      } catch (err) {
        throw new Error(`the input is not JSON: ${err instanceof Error ? err.message : err}`);
      }
      const accepted = await api(`/v1/circuits/${circuitId}/proofs`, {
        method: "POST",
        json: { input, fresh: fresh.checked },
        signal,
      });
      location.hash = `#/proofs/${accepted.proof_id}`;
    });
  });
  return section("Request a proof", form);
}

/**
 * @param {PageContext} context
 * @param {string} id
 */
export async function circuitPage({ signal, rerender }, id) {
  pageTitle(`Circuit ${short(id)}`);
  const circuit = await api(`/v1/circuits/${id}`, { signal });
  main.append(
    facts(
      [
        ["Circuit id", h("code", { class: "hash" }, circuit.circuit_id)],
        ["State", stateBadge(circuit.state)],
        ["Model", `${circuit.model_name} (${short(circuit.model_id)})`],
        ["Asked", circuit.created_at],
        [
          "Compile job",
          circuit.job_id ? link(`#/jobs/${circuit.job_id}`, short(circuit.job_id)) : undefined,
        ],
      ],
      "Circuit",
    ),
  );
  if (circuit.state !== "ready") {
    if (!circuit.job_id) return;
    const live = section("Compiling");
    main.append(live);
    const job = await followJob(live, circuit.job_id, signal);
    if (job.state === "succeeded") rerender();
    return;
  }
  const record = circuitRecord(circuit.record);
  main.append(...record.filter((node) => node !== null), proofRequestForm(id, signal));
  main.append(await deploymentsSection(id, signal));
}
