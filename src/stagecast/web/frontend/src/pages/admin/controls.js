// What the console's sections share: filters kept in the address (a reload or a link shows
// the same list), lists paged by cursor, and how times and people are shown.
import { h, replace, errorBox, formatDate, spinner, timeAgo } from "../../dom.js";

/**
 * A row of filters. `inputs` are [label, element] pairs, each element named after its query
 * parameter and filled from `query`; submitting opens the same section with the new ones.
 */
export function filterBar(inputs, { query, navigate }) {
  for (const [, input] of inputs) {
    const value = query.get(input.name);
    if (value !== null) input.value = value;
  }
  return h("form", {
    class: "admin-filters row",
    role: "search",
    onsubmit: (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      for (const [, input] of inputs) if (input.value) params.set(input.name, input.value);
      const text = params.toString();
      navigate(`${location.pathname}${text ? `?${text}` : ""}`);
    },
  },
    inputs.map(([label, input]) => h("label", { class: "field" }, h("span", {}, label), input)),
    h("button", { type: "submit", class: "button small" }, "Filter"));
}

/** The filters' values from the address: {name: value} for the non-empty ones. */
export function filtersFrom(query, names, defaults = {}) {
  const out = { ...defaults };
  for (const name of names) {
    const value = query.get(name);
    if (value) out[name] = value;
  }
  return out;
}

/**
 * A list paged by cursor: `load(cursor)` answers {data|items, next_cursor, has_more}, `item`
 * draws one entry. "Load more" appends the next page; `ready` settles with the first one.
 */
export function cursorList({ load, item, empty, tag = "ul", className = "admin-list" }) {
  const list = h(tag, { class: className });
  const status = h("div");
  const more = h("button", { type: "button", class: "button small", hidden: true }, "Load more");
  let cursor = null;
  async function next(first) {
    more.disabled = true;
    if (first) replace(status, spinner());
    try {
      const page = await load(first ? null : cursor);
      const entries = page.data ?? page.items ?? [];
      if (first) list.replaceChildren();
      list.append(...entries.map(item));
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
      replace(status, first && !entries.length ? h("p", { class: "empty" }, empty) : null);
    } catch (error) {
      replace(status, errorBox(error));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", () => next(false));
  // `footer` alone is for a list placed elsewhere (the rows of a table).
  const footer = h("div", { class: "admin-more" }, status, more);
  const element = h("div", { class: "admin-paged" }, list, footer);
  const ready = next(true);
  return { element, list, footer, reload: () => next(true), ready };
}

/** A moment: the date, with how long ago on hover. */
export function when(iso) {
  return iso ? h("time", { datetime: iso, title: timeAgo(iso) }, formatDate(iso)) : "—";
}

/** A person: @username linking to them in the Users section, or the id when that is all. */
export function person(user) {
  if (!user) return "—";
  if (typeof user === "string") return h("code", { title: user }, user.slice(0, 8));
  return h("a", { href: `/admin/users?q=${encodeURIComponent(user.username)}` }, `@${user.username}`);
}

/** A datetime-local input's value as an ISO time in UTC (the API wants a zone), or null. */
export function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : null;
}
