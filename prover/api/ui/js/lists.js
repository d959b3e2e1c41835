// @ts-check
// A list of the API as a table that follows the API's cursor pagination: the first page,
// then a "More" button that appends the next page while `next_cursor` says there is one.

import { PAGE_SIZE, listPage } from "./api.js";
import { act, h, table } from "./dom.js";

/**
 * @template T
 * @typedef {object} ListOptions
 * @property {string} path the list's route (GET /v1/...)
 * @property {Record<string, string>} [params] the list's filters (kind, subject_id)
 * @property {string} caption the table's caption (its accessible name)
 * @property {string} noun what the button loads more of ("circuits")
 * @property {string[]} columns
 * @property {(item: T) => unknown[]} row an item's cells
 * @property {Node} empty what is shown when the list has no item
 * @property {boolean} [live] announce the table's changes (a list that refreshes itself)
 * @property {number} [limit] items per page
 */

/**
 * @template T
 * @typedef {object} PagedList
 * @property {HTMLElement} element
 * @property {() => readonly T[]} items the items loaded so far
 * @property {() => Promise<void>} refresh read the loaded pages again (new items first)
 */

/**
 * A paged list, its first page loaded.
 * @template T
 * @param {ListOptions<T>} options
 * @param {AbortSignal} signal
 * @returns {Promise<PagedList<T>>}
 */
export async function pagedList(options, signal) {
  const { path, params = {}, caption, noun, columns, row, empty, live = false } = options;
  const limit = options.limit ?? PAGE_SIZE;
  const rows = h("div", live ? { role: "status", "aria-live": "polite" } : {});
  const status = h("div");
  const more = h("button", { type: "button", class: "quiet" }, `More ${noun}`);
  const footer = h("p", { hidden: true }, more);
  /** @type {T[]} */
  let items = [];
  /** @type {number | null} */
  let next = null;
  /** @type {Promise<unknown>} */
  let busy = Promise.resolve(); // one read at a time: a refresh never races a "More"

  /**
   * @param {number | null} cursor
   * @returns {Promise<import("./api.js").Page<T>>}
   */
  const read = (cursor) => listPage(path, { params, cursor, limit, signal });

  const render = () => {
    rows.replaceChildren(items.length ? table(caption, columns, items.map(row)) : empty);
    footer.hidden = next === null;
  };

  /**
   * @param {() => Promise<void>} work
   * @returns {Promise<void>}
   */
  const serially = (work) => {
    const done = busy.catch(() => undefined).then(work);
    busy = done;
    return done;
  };

  const loadMore = () =>
    serially(async () => {
      if (next === null) return;
      const page = await read(next);
      items = [...items, ...page.items];
      next = page.next_cursor;
      render();
      // The button is gone with the last page: the focus goes to the table, not the body.
      if (next === null) /** @type {HTMLElement | null} */ (rows.querySelector(".scroll"))?.focus();
    });

  const refresh = () =>
    serially(async () => {
      const wanted = Math.max(items.length, 1);
      /** @type {T[]} */
      const fresh = [];
      /** @type {number | null} */
      let cursor = null;
      do {
        const page = await read(cursor);
        fresh.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor !== null && fresh.length < wanted);
      items = fresh;
      next = cursor;
      render();
    });

  more.addEventListener("click", () => act(more, status, loadMore));
  await refresh();
  return {
    element: h("div", { class: "paged" }, rows, footer, status),
    items: () => items,
    refresh,
  };
}
