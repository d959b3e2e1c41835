// @ts-check
// The sign-in page: shown while this browser session has no API key. The key is checked
// against the API before it is kept.

import { api, keepApiKey } from "./api.js";
import { act, h, main, pageTitle } from "./dom.js";

/** @typedef {import("./dom.js").PageContext} PageContext */

/** @param {PageContext} context */
export function signInPage({ rerender }) {
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
      keepApiKey(key);
      if (!location.hash || location.hash === "#/") location.hash = "#/circuits";
      else rerender();
    });
  });
  main.append(form);
}
