// @ts-check
// The upload page (#/upload): a model, its calibration data and compile options; uploads
// and compiles it, or estimates what the compile would cost.

import { api } from "./api.js";
import { act, facts, h, main, pageTitle, section } from "./dom.js";
import { estimateFacts } from "./format.js";

/** @typedef {import("./dom.js").PageContext} PageContext */

const VISIBILITIES = ["public", "private", "hashed", "polycommit"];

/**
 * A labelled select of `options`, `chosen` selected.
 * @param {string} id
 * @param {string} label
 * @param {string[]} options
 * @param {string} chosen
 */
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

/** @param {PageContext} context */
export function uploadPage({ signal }) {
  pageTitle("Upload a model");
  const status = h("div");
  const button = h("button", { type: "submit" }, "Upload and compile");
  const estimate = h("button", { type: "button", class: "quiet" }, "Estimate cost");
  const estimateOut = h("div", { "aria-live": "polite" });
  const reusable = h("input", {
    id: "reusable_verifier",
    name: "reusable_verifier",
    type: "checkbox",
  });
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
        reusable,
        h("label", { for: "reusable_verifier" }, "Reusable verifier"),
      ),
    ),
    h("p", { class: "row" }, button, estimate),
    status,
  );
  // The form's fields as the API takes them: empty ones left out (the service's defaults).
  const compileData = () => {
    const data = new FormData(form);
    for (const [name, value] of [...data.entries()]) {
      if (value === "" || (value instanceof File && value.size === 0 && name === "calibration"))
        data.delete(name);
    }
    data.set("reusable_verifier", reusable.checked ? "true" : "false");
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
