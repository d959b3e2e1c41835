// The prover web console: a client of the public HTTP API and nothing else.
// The API key lives in sessionStorage (gone when the browser session ends) and is sent as
// a bearer token. Pages are routed by the URL's fragment: #/circuits, #/circuits/ID,
// #/jobs, #/jobs/ID, #/proofs, #/proofs/ID, #/runs, #/runs/ID, #/upload.
// Every element is built with the DOM (no innerHTML): what the API returns is text.

const KEY_STORE = "prover.apiKey";
const TERMINAL = new Set(["succeeded", "failed"]);
const WAIT_S = 1; // ?wait= of a job being followed: a fresh view at least every second
const LIST_REFRESH_MS = 2000;
const main = document.getElementById("main");
const nav = document.getElementById("nav");
let current = null; // the AbortController of the page on screen

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE);
}

// A call to the API: the parsed JSON body, or an ApiError carrying the API's own words.
async function api(path, { method = "GET", json, form, signal, key, raw } = {}) {
  const headers = { Authorization: `Bearer ${key ?? apiKey()}` };
  let body;
  if (form) body = form;
  else if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", `the API did not answer (${err.message})`);
  }
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    if (error && typeof error.message === "string") {
      throw new ApiError(response.status, error.code, error.message, data);
    }
    const what = text.trim().slice(0, 300) || response.statusText;
    throw new ApiError(response.status, "http_error", `HTTP ${response.status}: ${what}`);
  }
  return data;
}

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function short(id) {
  return id ? String(id).slice(0, 12) : "";
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en");
    const abs = Math.abs(value);
    return abs !== 0 && (abs < 1e-3 || abs >= 1e6)
      ? value.toExponential(3)
      : String(+value.toPrecision(6));
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function seconds(value) {
  return typeof value === "number" ? `${value.toFixed(value < 0.1 ? 4 : 3)} s` : "—";
}

function bytes(value) {
  if (typeof value !== "number") return "—";
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}

// A description list of [term, value] pairs (values may be nodes); null values skipped.
function facts(pairs, label) {
  const dl = h("dl", { class: "facts", "aria-label": label });
  for (const [term, value] of pairs) {
    if (value === undefined) continue;
    dl.append(h("dt", {}, term), h("dd", {}, value instanceof Node ? value : fmt(value)));
  }
  return dl;
}

// A table inside a scrolling region; on narrow screens each row becomes a card whose
// cells are labelled by their column (data-label), with explicit roles kept for screen
// readers (a table restyled as blocks loses its implicit ones).
function table(caption, columns, rows) {
  const head = h(
    "tr",
    { role: "row" },
    columns.map((c) => h("th", { scope: "col", role: "columnheader" }, c)),
  );
  const body = rows.map((cells) =>
    h(
      "tr",
      { role: "row" },
      cells.map((c, i) =>
        h("td", { role: "cell", "data-label": columns[i] }, c instanceof Node ? c : fmt(c)),
      ),
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

function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function link(href, text) {
  return h("a", { href }, text);
}

// A link to one item, showing a short id; its accessible name holds the whole id, so that
// a screen reader (or a test) can find it by either.
function idLink(where, noun, id) {
  return h(
    "a",
    { href: `#/${where}/${id}`, "aria-label": `${noun} ${id}`, title: id },
    `${noun} ${short(id)}`,
  );
}

function subjectLink(kindName, id) {
  const where = {
    compile: "circuits",
    deploy: "circuits",
    prove: "proofs",
    submit: "proofs",
    prove_segment: "proofs",
    train_step: "runs",
    ledger: "runs",
  }[kindName];
  return where ? link(`#/${where}/${id}`, short(id)) : short(id);
}

function errorBox(err) {
  const box = h("div", { class: "error", role: "alert" });
  if (err instanceof ApiError || (err && err.message)) {
    box.append(h("span", { class: "error-message" }, err.message));
    if (err.code) box.append(" ", h("code", { class: "error-code" }, err.code));
  } else {
    box.append(String(err));
  }
  return box;
}

// A job's error object ({code, message, ...}) exactly as the API words it.
function jobErrorBox(error) {
  return errorBox(new ApiError(0, error.code, error.message || JSON.stringify(error)));
}

function devSrsWarning() {
  return h(
    "p",
    { class: "warning", role: "note" },
    h("strong", {}, "Development SRS: "),
    "made on this machine, NOT for production; set PROVER_SRS_PATH to a ceremony SRS file.",
  );
}

function pageTitle(text, ...extra) {
  document.title = `${text} · prover console`;
  const heading = h("h1", { tabindex: "-1" }, text, ...extra);
  main.append(heading);
  heading.focus({ preventScroll: true });
  return heading;
}

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// ---------------------------------------------------------------- jobs, live

function jobFacts(job) {
  const progress = h("progress", { max: 1, value: job.progress, "aria-label": "Progress" });
  const percent = `${Math.round(job.progress * 100)}%`;
  const timings = Object.entries(job.timings || {});
  return [
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
    timings.length
      ? table(
          "Seconds per phase",
          ["Phase", "Seconds"],
          timings.map(([p, s]) => [p, seconds(s)]),
        )
      : null,
    job.error ? jobErrorBox(job.error) : null,
  ];
}

// Show a job and follow it until it ends (?wait= long-poll); resolves with its last view.
async function followJob(container, jobId, signal) {
  const live = h("div", { class: "job", role: "status", "aria-live": "polite" });
  container.append(live);
  let wait = 0;
  for (;;) {
    const job = await api(`/v1/jobs/${jobId}?wait=${wait}`, { signal });
    live.replaceChildren(...jobFacts(job).filter(Boolean));
    if (TERMINAL.has(job.state)) return job;
    wait = WAIT_S;
  }
}

// ---------------------------------------------------------------- pages

async function circuitsPage(signal) {
  pageTitle("Models and circuits");
  const [circuits, models] = await Promise.all([
    api("/v1/circuits?limit=100", { signal }),
    api("/v1/models?limit=100", { signal }),
  ]);
  main.append(
    section(
      "Circuits",
      circuits.items.length
        ? table(
            "Circuits",
            ["Circuit", "Model", "State", "Asked"],
            circuits.items.map((c) => [
              idLink("circuits", "Circuit", c.circuit_id),
              c.model_name,
              h("span", { class: `state state-${c.state}` }, c.state),
              c.created_at,
            ]),
          )
        : h("p", {}, "No circuits yet. ", link("#/upload", "Upload a model"), " to make one."),
    ),
    section(
      "Models",
      models.items.length
        ? table(
            "Models",
            ["Name", "Model id", "Parameters", "Uploaded"],
            models.items.map((m) => [
              m.name,
              h("code", {}, short(m.model_id)),
              m.parameter_count,
              m.created_at,
            ]),
          )
        : h("p", {}, "No models yet."),
    ),
  );
}

function chosenTrial(record) {
  const search = record.search || {};
  return (search.trials || []).find((t) => t.name === search.chosen) || null;
}

// The record's cost-model estimate, where the service made one.
function estimatePairs(estimate) {
  if (!estimate || typeof estimate !== "object") return [];
  return estimateFacts(estimate).map(([label, v]) => [`Estimated ${label}`, v]);
}

function circuitRecord(record) {
  const trial = chosenTrial(record);
  const accuracy = record.accuracy || {};
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
          ...(record.inputs || []).map((t) => ["input", t.name, fmt(t.shape)]),
          ...(record.outputs || []).map((t) => ["output", t.name, fmt(t.shape)]),
        ],
      ),
    ),
  ];
}

// This key's jobs of one kind about one subject (deployments, on-chain submissions).
async function jobsAbout(kindName, subjectId, signal) {
  const page = await api("/v1/jobs?limit=100", { signal });
  return page.items.filter((j) => j.kind === kindName && j.subject_id === subjectId);
}

function deploymentRow(job) {
  const r = job.result || {};
  return [
    link(`#/jobs/${job.job_id}`, short(job.job_id)),
    h("span", { class: `state state-${job.state}` }, job.state),
    r.verifier_address ? h("code", {}, r.verifier_address) : job.error ? job.error.message : "—",
    r.tx_hash ? h("code", { class: "hash" }, r.tx_hash) : r.reused ? "reused" : "—",
    r.chain_id,
  ];
}

async function deploymentsSection(circuitId, signal) {
  const out = section("Deployments");
  const list = h("div");
  const status = h("div");
  const refresh = async () => {
    const jobs = await jobsAbout("deploy", circuitId, signal);
    list.replaceChildren(
      jobs.length
        ? table(
            "Deployments",
            ["Job", "State", "Verifier", "Transaction", "Chain"],
            jobs.map(deploymentRow),
          )
        : h("p", {}, "Not deployed by this key."),
    );
  };
  const button = h(
    "button",
    {
      type: "button",
      onclick: () =>
        act(button, status, async () => {
          const accepted = await api(`/v1/circuits/${circuitId}/deployments`, {
            method: "POST",
            json: {},
            signal,
          });
          await followJob(status, accepted.job_id, signal);
          await refresh();
        }),
    },
    "Deploy verifier",
  );
  await refresh();
  out.append(list, h("p", {}, button), status);
  return out;
}

// Run an action from a button: disabled meanwhile, errors shown in `status`.
async function act(button, status, action) {
  button.disabled = true;
  status.replaceChildren();
  try {
    await action();
  } catch (err) {
    if (err.name !== "AbortError") status.append(errorBox(err));
  } finally {
    button.disabled = false;
  }
}

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
    if (file.files.length) text.value = await file.files[0].text();
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
        throw new Error(`the input is not JSON: ${err.message}`);
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

async function circuitPage(signal, id) {
  pageTitle(`Circuit ${short(id)}`);
  const circuit = await api(`/v1/circuits/${id}`, { signal });
  main.append(
    facts(
      [
        ["Circuit id", h("code", { class: "hash" }, circuit.circuit_id)],
        ["State", h("span", { class: `state state-${circuit.state}` }, circuit.state)],
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
  main.append(...circuitRecord(circuit.record).filter(Boolean), proofRequestForm(id, signal));
  main.append(await deploymentsSection(id, signal));
}

async function jobsPage(signal) {
  pageTitle("Jobs");
  const holder = h("div", { role: "status", "aria-live": "polite" });
  main.append(holder);
  for (;;) {
    const page = await api("/v1/jobs?limit=100", { signal });
    holder.replaceChildren(
      page.items.length
        ? table(
            "Jobs",
            ["Job", "Kind", "Subject", "State", "Phase", "Progress", "Error"],
            page.items.map((j) => [
              idLink("jobs", "Job", j.job_id),
              j.kind,
              subjectLink(j.kind, j.subject_id),
              h("span", { class: `state state-${j.state}` }, j.state),
              j.phase,
              h("progress", {
                max: 1,
                value: j.progress,
                "aria-label": `Progress of job ${short(j.job_id)}`,
              }),
              j.error ? h("span", { class: "error-text" }, j.error.message) : "",
            ]),
          )
        : h("p", {}, "No jobs yet."),
    );
    if (!page.items.some((j) => !TERMINAL.has(j.state))) return;
    await sleep(LIST_REFRESH_MS, signal);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    };
    signal.addEventListener("abort", stop, { once: true });
  });
}

async function jobPage(signal, id) {
  pageTitle(`Job ${short(id)}`);
  const job = await followJob(main, id, signal);
  const where = {
    compile: ["circuits", "Open circuit"],
    prove: ["proofs", "Open proof"],
    submit: ["proofs", "Open proof"],
    deploy: ["circuits", "Open circuit"],
    train_step: ["runs", "Open training run"],
    ledger: ["runs", "Open training run"],
  }[job.kind];
  if (job.state === "succeeded" && where) {
    main.append(
      h(
        "p",
        { class: "next" },
        link(`#/${where[0]}/${job.subject_id}`, `${where[1]} ${short(job.subject_id)}`),
      ),
    );
  }
  if (job.result) main.append(section("Result", json(job.result)));
}

async function proofsPage(signal) {
  pageTitle("Proofs");
  const page = await api("/v1/proofs?limit=100", { signal });
  main.append(
    page.items.length
      ? table(
          "Proofs",
          ["Proof", "State", "Circuit", "Asked"],
          page.items.map((p) => [
            idLink("proofs", "Proof", p.proof_id),
            h("span", { class: `state state-${p.state}` }, p.state),
            link(`#/circuits/${p.circuit_id}`, short(p.circuit_id)),
            p.created_at,
          ]),
        )
      : h("p", {}, "No proofs yet. Open a ready circuit to request one."),
  );
}

function flatNumbers(value) {
  return Array.isArray(value)
    ? value.flatMap(flatNumbers)
    : typeof value === "number"
      ? [value]
      : [];
}

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

function shapeOf(value) {
  return Array.isArray(value) ? [value.length, ...shapeOf(value[0])] : [];
}

function instancesSection(proof) {
  const rows = (proof.instances || []).flatMap((group, g) =>
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

function verifyControls(id, signal) {
  const result = h("output", {
    id: "verify-result",
    class: "verdict",
    "aria-live": "polite",
    "aria-label": "Verification result",
  });
  const detail = h("p", { class: "muted" });
  const status = h("div");
  const button = h(
    "button",
    {
      type: "button",
      onclick: () =>
        act(button, status, async () => {
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
        }),
    },
    "Verify",
  );
  return section("Verification", h("p", { class: "row" }, button, " ", result), detail, status);
}

function downloadButton(id, signal, segment) {
  const status = h("div");
  const query = segment === undefined ? "" : `?segment=${segment}`;
  const suffix = segment === undefined ? "" : `-segment-${segment}`;
  const button = h(
    "button",
    {
      type: "button",
      onclick: () =>
        act(button, status, async () => {
          const response = await api(`/v1/proofs/${id}/ezkl${query}`, { signal, raw: true });
          const url = URL.createObjectURL(await response.blob());
          const name = `proof-${short(id)}${suffix}.json`;
          const anchor = h("a", { href: url, download: name, hidden: true });
          document.body.append(anchor);
          anchor.click();
          anchor.remove();
          setTimeout(() => URL.revokeObjectURL(url), 10000);
        }),
    },
    segment === undefined ? "Download proof (ezkl JSON)" : `Download segment ${segment} proof`,
  );
  return [h("p", {}, button), status];
}

function submissionRow(job) {
  const r = job.result || {};
  return [
    link(`#/jobs/${job.job_id}`, short(job.job_id)),
    h("span", { class: `state state-${job.state}` }, job.state),
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

async function onchainSection(id, signal) {
  const out = section("On-chain acceptance");
  const list = h("div");
  const status = h("div");
  const refresh = async () => {
    const jobs = await jobsAbout("submit", id, signal);
    list.replaceChildren(
      jobs.length
        ? table(
            "On-chain submissions",
            ["Job", "State", "Acceptance", "Transaction", "Gas"],
            jobs.map(submissionRow),
          )
        : h(
            "p",
            {},
            "Not submitted on chain by this key (the circuit's verifier must be deployed first).",
          ),
    );
  };
  const button = h(
    "button",
    {
      type: "button",
      onclick: () =>
        act(button, status, async () => {
          const accepted = await api(`/v1/proofs/${id}/submissions`, {
            method: "POST",
            json: {},
            signal,
          });
          await followJob(status, accepted.job_id, signal);
          await refresh();
        }),
    },
    "Submit on chain",
  );
  await refresh();
  out.append(list, h("p", {}, button), status);
  return out;
}

async function proofPage(signal, id) {
  pageTitle(`Proof ${short(id)}`);
  const proof = await api(`/v1/proofs/${id}`, { signal });
  main.append(
    facts(
      [
        ["Proof id", h("code", { class: "hash" }, proof.proof_id)],
        ["State", h("span", { class: `state state-${proof.state}` }, proof.state)],
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

function segmentsSection(proof, signal) {
  const rows = proof.segments.map((s) => [
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

function batchSection(proof) {
  const rows = proof.results.map((r) => [
    String(r.index),
    h("code", {}, JSON.stringify(r.outputs)),
    h("code", { class: "hash" }, r.result_key),
  ]);
  return section(
    "Batch results",
    table("Batch results", ["Item", "Outputs", "Result key on chain"], rows),
  );
}

function batchedSection(proof) {
  const b = proof.batch;
  return section(
    "Proven in a batch",
    h("p", {}, "This request was proven together with other requests of this key in one batch proof."),
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

async function runsPage(signal) {
  pageTitle("Training runs");
  const page = await api("/v1/training/runs?limit=100", { signal });
  main.append(
    page.items.length
      ? table(
          "Training runs",
          ["Run", "State", "Steps", "Step circuit"],
          page.items.map((r) => [
            idLink("runs", "Run", r.run_id),
            h("span", { class: `state state-${r.state}` }, r.state),
            `${r.steps_done} / ${r.steps_total}`,
            link(`#/circuits/${r.circuit_id}`, short(r.circuit_id)),
          ]),
        )
      : h(
          "p",
          {},
          "No training runs yet (start one with `prover train run --remote` or POST /v1/training/runs).",
        ),
  );
}

// Proven and float loss per step, as an inline SVG line chart.
function lossChart(steps) {
  const W = 640;
  const H = 260;
  const pad = { left: 64, right: 16, top: 16, bottom: 40 };
  const ns = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs = {}, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  };
  const series = [
    ["proven loss", steps.map((s) => s.loss), "series-proven"],
    ["float loss", steps.map((s) => s.float_loss), "series-float"],
  ];
  const all = series.flatMap(([, v]) => v).filter((v) => typeof v === "number");
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!(hi > lo)) [lo, hi] = [lo - 1e-6 - Math.abs(lo) * 0.05, hi + 1e-6 + Math.abs(hi) * 0.05];
  const n = Math.max(steps.length - 1, 1);
  const x = (i) => pad.left + ((W - pad.left - pad.right) * i) / n;
  const y = (v) => pad.top + (H - pad.top - pad.bottom) * (1 - (v - lo) / (hi - lo));
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": "Loss per step: proven against float",
    class: "chart",
  });
  chart.append(svg("title", {}, "Loss per step: proven against float"));
  chart.append(
    svg("line", {
      x1: pad.left,
      y1: H - pad.bottom,
      x2: W - pad.right,
      y2: H - pad.bottom,
      class: "axis",
    }),
  );
  chart.append(
    svg("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: H - pad.bottom, class: "axis" }),
  );
  for (const v of [lo, (lo + hi) / 2, hi]) {
    chart.append(
      svg("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmt(v)),
    );
  }
  steps.forEach((s, i) =>
    chart.append(
      svg(
        "text",
        { x: x(i), y: H - pad.bottom + 16, "text-anchor": "middle", class: "tick" },
        String(s.step),
      ),
    ),
  );
  chart.append(
    svg(
      "text",
      { x: (W + pad.left) / 2, y: H - 6, "text-anchor": "middle", class: "tick" },
      "step",
    ),
  );
  for (const [, values, cls] of series) {
    const points = values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
    chart.append(svg("polyline", { points, class: `line ${cls}` }));
    values.forEach((v, i) =>
      chart.append(svg("circle", { cx: x(i), cy: y(v), r: 3.5, class: `dot ${cls}` })),
    );
  }
  const legend = h(
    "ul",
    { class: "legend" },
    series.map(([name, , cls]) => h("li", { class: cls }, name)),
  );
  return h("figure", {}, chart, h("figcaption", {}, legend));
}

function stepRow(s) {
  const c = s.commitments || {};
  return [
    s.step,
    idLink("proofs", "Proof", s.proof_id),
    s.loss,
    s.float_loss,
    s.max_error_vs_float,
    h("code", { class: "hash" }, short(c.weights_in)),
    h("code", { class: "hash" }, short(c.weights_out)),
    s.timings ? seconds(s.timings.prove_s) : "—",
  ];
}

function chainControls(run, signal) {
  const result = h("output", {
    id: "chain-result",
    class: "verdict",
    "aria-live": "polite",
    "aria-label": "Chain verification result",
  });
  const detail = h("p", { class: "muted" });
  const status = h("div");
  const verify = h(
    "button",
    {
      type: "button",
      onclick: () =>
        act(verify, status, async () => {
          const answer = await api("/v1/training/verify-chain", {
            method: "POST",
            json: { proof_ids: run.steps.map((s) => s.proof_id) },
            signal,
          });
          result.textContent = answer.valid ? "valid" : "broken";
          result.className = `verdict ${answer.valid ? "ok" : "bad"}`;
          detail.textContent = answer.valid
            ? `${answer.steps.length} steps chain; final weights ${answer.final_weights}`
            : `broken at step ${answer.broken_at}: ${answer.reason}`;
        }),
    },
    "Verify chain",
  );
  const ledger = h(
    "button",
    {
      type: "button",
      class: "quiet",
      onclick: () =>
        act(ledger, status, async () => {
          const accepted = await api(`/v1/training/runs/${run.run_id}/ledger`, {
            method: "POST",
            signal,
          });
          const job = await followJob(status, accepted.job_id, signal);
          if (job.result) status.append(json(job.result));
        }),
    },
    "Put on the training ledger",
  );
  return section(
    "Chain verification",
    h("p", { class: "row" }, verify, " ", result),
    detail,
    h("p", {}, ledger),
    status,
  );
}

async function runPage(signal, id) {
  pageTitle(`Training run ${short(id)}`);
  const run = await api(`/v1/training/runs/${id}`, { signal });
  main.append(
    facts(
      [
        ["Run id", h("code", { class: "hash" }, run.run_id)],
        ["State", h("span", { class: `state state-${run.state}` }, run.state)],
        ["Steps", `${run.steps_done} / ${run.steps_total}`],
        ["Step circuit", link(`#/circuits/${run.circuit_id}`, short(run.circuit_id))],
        ["Scale", run.scale],
        [
          "Final commitment",
          run.final_commitment ? h("code", { class: "hash" }, run.final_commitment) : undefined,
        ],
      ],
      "Training run",
    ),
  );
  if (run.error) main.append(jobErrorBox(run.error));
  if (run.rounds && run.rounds.length) main.append(roundsSection(run));
  const steps = run.steps || [];
  if (steps.length) {
    main.append(
      section("Loss", lossChart(steps)),
      section(
        "Steps",
        table(
          "Steps",
          [
            "Step",
            "Proof",
            "Proven loss",
            "Float loss",
            "Error vs float",
            "Weights in",
            "Weights out",
            "Prove",
          ],
          steps.map(stepRow),
        ),
      ),
      chainControls(run, signal),
    );
  }
  if (run.state === "running" && run.job_id) {
    const live = section("Current step");
    main.append(live);
    await followJob(live, run.job_id, signal);
    rerender();
  }
}

function roundsSection(run) {
  const rows = run.rounds.map((r) => [
    String(r.round),
    h(
      "span",
      {},
      ...r.client_proof_ids.flatMap((p, k) => [
        k ? " " : "",
        link(`#/proofs/${p}`, `client ${k}`),
      ]),
    ),
    link(`#/proofs/${r.aggregation_proof_id}`, short(r.aggregation_proof_id)),
    h("code", { class: "hash" }, r.global_weights_out),
  ]);
  return section(
    "Federated rounds",
    table("Federated rounds", ["Round", "Client steps", "Aggregation", "Global weights out"], rows),
  );
}

const VISIBILITIES = ["public", "private", "hashed", "polycommit"];

function select(id, label, options, chosen) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h(
      "select",
      { id, name: id },
      options.map((o) => h("option", { value: o, selected: o === chosen }, o)),
    ),
  );
}

function uploadPage(signal) {
  pageTitle("Upload a model");
  const status = h("div");
  const button = h("button", { type: "submit" }, "Upload and compile");
  const estimate = h("button", { type: "button", class: "quiet" }, "Estimate cost");
  const estimateOut = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { "aria-label": "Upload a model" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "model" }, "Model (ONNX file)"),
      h("input", { id: "model", name: "model", type: "file", accept: ".onnx", required: true }),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "calibration" }, "Calibration data (JSON file)"),
      h("input", {
        id: "calibration",
        name: "calibration",
        type: "file",
        accept: ".json,application/json",
      }),
    ),
    h(
      "details",
      {},
      h("summary", {}, "Compile options"),
      h(
        "div",
        { class: "field" },
        h("label", { for: "tolerance" }, "Tolerance"),
        h("input", {
          id: "tolerance",
          name: "tolerance",
          type: "number",
          step: "any",
          min: "0",
          placeholder: "the service's default",
        }),
      ),
      select("strategy", "Strategy", ["search", "ezkl-default"], "search"),
      select("objective", "Objective", ["prove-time", "verify-gas"], "prove-time"),
      select("input_visibility", "Input visibility", VISIBILITIES, "public"),
      select("param_visibility", "Parameter visibility", ["fixed", ...VISIBILITIES], "fixed"),
      select("output_visibility", "Output visibility", VISIBILITIES, "public"),
      h(
        "div",
        { class: "check" },
        h("input", { id: "reusable_verifier", name: "reusable_verifier", type: "checkbox" }),
        h("label", { for: "reusable_verifier" }, "Reusable verifier"),
      ),
    ),
    h("p", { class: "row" }, button, estimate),
    status,
  );
  const compileData = () => {
    const data = new FormData(form);
    for (const [name, value] of [...data.entries()]) {
      if (value === "" || (value instanceof File && value.size === 0 && name === "calibration"))
        data.delete(name);
    }
    data.set("reusable_verifier", form.elements.reusable_verifier.checked ? "true" : "false");
    return data;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(button, status, async () => {
      const accepted = await api("/v1/models", { method: "POST", form: compileData(), signal });
      location.hash = `#/jobs/${accepted.job_id}`;
    });
  });
  estimate.addEventListener("click", () => {
    if (!form.reportValidity()) return;
    act(estimate, status, async () => {
      estimateOut.replaceChildren(
        h("p", { class: "muted" }, "estimating (ezkl calibration, up to a minute)…"),
      );
      try {
        const answer = await api("/v1/estimates", { method: "POST", form: compileData(), signal });
        estimateOut.replaceChildren(
          section("Cost estimate", facts(estimateFacts(answer), "Cost estimate")),
        );
      } catch (err) {
        estimateOut.replaceChildren();
        throw err;
      }
    });
  });
  main.append(form, estimateOut);
}

// A cost estimate's answer (POST /v1/estimates): each plain field, sizes and seconds by name.
function estimateFacts(answer) {
  return Object.entries(answer)
    .filter(([, v]) => v === null || typeof v !== "object")
    .map(([k, v]) => {
      const label = k.replace(/_(bytes|s)$/, "").replaceAll("_", " ");
      if (k.endsWith("_bytes")) return [label, bytes(v)];
      if (k.endsWith("_s")) return [label, seconds(v)];
      return [label, v];
    });
}

function signInPage() {
  pageTitle("Sign in");
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const status = h("div");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { "aria-label": "Sign in" },
    h(
      "p",
      {},
      "Enter an API key of this service (",
      h("code", {}, "prover keys create"),
      "). It is kept for this browser session only.",
    ),
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input),
    h("p", {}, button),
    status,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(button, status, async () => {
      const key = input.value.trim();
      await api("/v1/models?limit=1", { key });
      sessionStorage.setItem(KEY_STORE, key);
      if (!location.hash || location.hash === "#/") location.hash = "#/circuits";
      else rerender();
    });
  });
  main.append(form);
}

// ---------------------------------------------------------------- routing

const ROUTES = [
  [/^#\/circuits$/, circuitsPage],
  [/^#\/circuits\/([0-9a-zA-Z_-]+)$/, circuitPage],
  [/^#\/jobs$/, jobsPage],
  [/^#\/jobs\/([0-9a-zA-Z_-]+)$/, jobPage],
  [/^#\/proofs$/, proofsPage],
  [/^#\/proofs\/([0-9a-zA-Z_-]+)$/, proofPage],
  [/^#\/runs$/, runsPage],
  [/^#\/runs\/([0-9a-zA-Z_-]+)$/, runPage],
  [/^#\/upload$/, uploadPage],
];

function markCurrent(hash) {
  for (const a of nav.querySelectorAll("a")) {
    const here = hash === a.getAttribute("href") || hash.startsWith(`${a.getAttribute("href")}/`);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function rerender() {
  if (current) current.abort();
  current = new AbortController();
  const { signal } = current;
  main.replaceChildren();
  main.removeAttribute("aria-busy");
  const hash = location.hash || "#/circuits";
  nav.hidden = !apiKey();
  markCurrent(hash);
  if (!apiKey()) return signInPage();
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    location.replace("#/circuits");
    return;
  }
  const [pattern, page] = route;
  main.setAttribute("aria-busy", "true");
  try {
    await page(signal, ...hash.match(pattern).slice(1));
  } catch (err) {
    if (err.name === "AbortError") return;
    main.append(errorBox(err));
  } finally {
    if (!signal.aborted) main.removeAttribute("aria-busy");
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORE);
  rerender();
});
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", rerender);
rerender();
