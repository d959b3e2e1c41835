// @ts-check
// Values as text: short ids, numbers, seconds, sizes, and a cost estimate's fields.

/**
 * The first 12 characters of an id (what lists and links show).
 * @param {string | null | undefined} id
 */
export function short(id) {
  return id ? String(id).slice(0, 12) : "";
}

/**
 * Any value the API returns, as text ("—" for none).
 * @param {unknown} value
 * @returns {string}
 */
export function fmt(value) {
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

/** @param {unknown} value */
export function seconds(value) {
  return typeof value === "number" ? `${value.toFixed(value < 0.1 ? 4 : 3)} s` : "—";
}

/** @param {unknown} value */
export function bytes(value) {
  if (typeof value !== "number") return "—";
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  if (value < 1024 ** 3) return `${(value / 1024 / 1024).toFixed(1)} MiB`;
  return `${(value / 1024 ** 3).toFixed(1)} GiB`;
}

/**
 * A cost estimate (POST /v1/estimates, or a circuit record's): each plain field as a
 * [label, value] pair, sizes and seconds by their names' suffix.
 * @param {Record<string, unknown>} answer
 * @returns {[string, unknown][]}
 */
export function estimateFacts(answer) {
  return Object.entries(answer)
    .filter(([, v]) => v === null || typeof v !== "object")
    .map(([k, v]) => {
      const label = k.replace(/_(bytes|s)$/, "").replaceAll("_", " ");
      if (k.endsWith("_bytes")) return [label, bytes(v)];
      if (k.endsWith("_s")) return [label, seconds(v)];
      return [label, v];
    });
}
