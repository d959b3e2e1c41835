// @ts-check
// The training pages: this key's runs (#/runs), and a run (#/runs/ID): its steps, loss
// chart, federated rounds and chain verification, its current step followed live.

import { api } from "./api.js";
import {
  actionButton,
  facts,
  h,
  idLink,
  jobErrorBox,
  json,
  link,
  main,
  pageTitle,
  section,
  stateBadge,
  table,
} from "./dom.js";
import { fmt, seconds, short } from "./format.js";
import { followJob } from "./job-view.js";
import { pagedList } from "./lists.js";

/** @typedef {import("./api.js").RunItem} RunItem */
/** @typedef {import("./dom.js").PageContext} PageContext */
/** A run as GET /v1/training/runs/ID answers. @typedef {Record<string, any>} Run */
/** One proven step of a run. @typedef {Record<string, any>} Step */

const SVG = "http://www.w3.org/2000/svg";

/** @param {PageContext} context */
export async function runsPage({ signal }) {
  pageTitle("Training runs");
  const list = await pagedList(
    /** @type {import("./lists.js").ListOptions<RunItem>} */ ({
      path: "/v1/training/runs",
      caption: "Training runs",
      noun: "runs",
      columns: ["Run", "State", "Steps", "Step circuit"],
      row: (r) => [
        idLink("runs", "Run", r.run_id),
        stateBadge(r.state),
        `${r.steps_done} / ${r.steps_total}`,
        link(`#/circuits/${r.circuit_id}`, short(r.circuit_id)),
      ],
      empty: h(
        "p",
        {},
        "No training runs yet (start one with `prover train run --remote` or ",
        "POST /v1/training/runs).",
      ),
    }),
    signal,
  );
  main.append(list.element);
}

/**
 * An SVG element with attributes (and text).
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 */
function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * Proven and float loss per step, as an inline SVG line chart.
 * @param {Step[]} steps
 */
function lossChart(steps) {
  const W = 640;
  const H = 260;
  const pad = { left: 64, right: 16, top: 16, bottom: 40 };
  /** @type {[string, number[], string][]} */
  const series = [
    ["proven loss", steps.map((s) => s.loss), "series-proven"],
    ["float loss", steps.map((s) => s.float_loss), "series-float"],
  ];
  const all = series.flatMap(([, v]) => v).filter((v) => typeof v === "number");
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!(hi > lo)) [lo, hi] = [lo - 1e-6 - Math.abs(lo) * 0.05, hi + 1e-6 + Math.abs(hi) * 0.05];
  const n = Math.max(steps.length - 1, 1);
  /** @param {number} i */
  const x = (i) => pad.left + ((W - pad.left - pad.right) * i) / n;
  /** @param {number} v */
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

/** @param {Step} s */
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

/**
 * Verify the chain of the run's step proofs; put the run on the training ledger.
 * @param {Run} run
 * @param {AbortSignal} signal
 */
function chainControls(run, signal) {
  const result = h("output", {
    id: "chain-result",
    class: "verdict",
    "aria-live": "polite",
    "aria-label": "Chain verification result",
  });
  const detail = h("p", { class: "muted" });
  const status = h("div");
  const verify = actionButton("Verify chain", status, async () => {
    const answer = await api("/v1/training/verify-chain", {
      method: "POST",
      json: { proof_ids: run.steps.map((/** @type {Step} */ s) => s.proof_id) },
      signal,
    });
    result.textContent = answer.valid ? "valid" : "broken";
    result.className = `verdict ${answer.valid ? "ok" : "bad"}`;
    detail.textContent = answer.valid
      ? `${answer.steps.length} steps chain; final weights ${answer.final_weights}`
      : `broken at step ${answer.broken_at}: ${answer.reason}`;
  });
  const ledger = actionButton(
    "Put on the training ledger",
    status,
    async () => {
      const accepted = await api(`/v1/training/runs/${run.run_id}/ledger`, {
        method: "POST",
        signal,
      });
      const job = await followJob(status, accepted.job_id, signal);
      if (job.result) status.append(json(job.result));
    },
    { class: "quiet" },
  );
  return section(
    "Chain verification",
    h("p", { class: "row" }, verify, " ", result),
    detail,
    h("p", {}, ledger),
    status,
  );
}

/** @param {Run} run */
function roundsSection(run) {
  /** @type {Record<string, any>[]} */
  const rounds = run.rounds;
  const rows = rounds.map((r) => [
    String(r.round),
    h(
      "span",
      {},
      .../** @type {string[]} */ (r.client_proof_ids).flatMap((p, k) => [
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

/**
 * @param {PageContext} context
 * @param {string} id
 */
export async function runPage({ signal, rerender }, id) {
  pageTitle(`Training run ${short(id)}`);
  /** @type {Run} */
  const run = await api(`/v1/training/runs/${id}`, { signal });
  main.append(
    facts(
      [
        ["Run id", h("code", { class: "hash" }, run.run_id)],
        ["State", stateBadge(run.state)],
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
  /** @type {Step[]} */
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
