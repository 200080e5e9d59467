// Announcements: the banners everyone sees under the header (info, warning or error), with an
// optional window; listed newest first, posted here and taken down for good.
import { get, post, del } from "../../api.js";
import { h, replace, choice, confirmButton, errorBox, field, toast } from "../../dom.js";
import { refreshAnnouncements } from "../../announcements.js";
import { cursorList, isoFromLocal, when } from "./controls.js";

const TYPES = [["info", "Information"], ["warning", "Warning"], ["error", "Problem"]];

export async function render(container) {
  const paged = cursorList({
    load: (cursor) => get("admin/announcements", { limit: 25, cursor }),
    item: (announcement) => announcementItem(announcement),
    empty: "No announcements yet.",
  });
  replace(container, createForm(() => paged.reload()), h("h2", {}, "Posted"), paged.element);
  await paged.ready;
}

function showing(a) {
  const now = Date.now();
  if (a.starts_at && new Date(a.starts_at).getTime() > now) return "scheduled";
  if (a.ends_at && new Date(a.ends_at).getTime() <= now) return "ended";
  return "showing";
}

function announcementItem(a) {
  const row = h("li", { class: `panel announcement-item announcement-${a.type}`, dataset: { id: a.id } });
  const state = showing(a);
  replace(row,
    h("div", { class: "queue-head" },
      h("span", { class: "chip" }, a.type),
      h("span", { class: `chip ${state}` }, state),
      h("strong", {}, a.title),
      h("span", { class: "muted" }, "posted ", when(a.created_at))),
    h("p", {}, a.content),
    a.starts_at || a.ends_at
      ? h("p", { class: "muted" }, "from ", when(a.starts_at), " until ", when(a.ends_at))
      : null,
    confirmButton("Delete", `Delete “${a.title}”`, async () => {
      try {
        await del(`admin/announcements/${a.id}`);
        row.remove();
        toast("Announcement taken down");
        refreshAnnouncements();
      } catch (error) {
        toast(error.message, "error");
      }
    }));
  return row;
}

function createForm(posted) {
  const title = h("input", { name: "title", required: true, maxlength: 200 });
  const content = h("textarea", { name: "content", required: true, maxlength: 5000, rows: 3 });
  const type = choice({ name: "type" }, TYPES, "info");
  const starts = h("input", { name: "starts_at", type: "datetime-local" });
  const ends = h("input", { name: "ends_at", type: "datetime-local" });
  const errors = h("div");
  const submit = h("button", { type: "submit", class: "button primary" }, "Post announcement");
  const form = h("form", {
    class: "panel stack",
    "aria-label": "New announcement",
    onsubmit: async (event) => {
      event.preventDefault();
      replace(errors);
      submit.disabled = true;
      try {
        await post("admin/announcements", {
          title: title.value.trim(),
          content: content.value.trim(),
          type: type.value,
          starts_at: isoFromLocal(starts.value),
          ends_at: isoFromLocal(ends.value),
        });
        form.reset();
        toast("Announcement posted");
        posted();
        refreshAnnouncements();
      } catch (error) {
        replace(errors, errorBox(error));
      } finally {
        submit.disabled = false;
      }
    },
  },
    h("h2", {}, "New announcement"),
    field("Title", title),
    field("Text", content),
    h("div", { class: "row" },
      field("Type", type),
      field("Showing from", starts, "Empty: at once"),
      field("Until", ends, "Empty: until deleted")),
    errors,
    submit);
  return form;
}
