// Maintenance mode: while it is on, everyone but admins gets the maintenance page (and the API
// answers 503 with Retry-After); streams on air continue, no new broadcast starts.
import { get, put } from "../../api.js";
import { h, replace, errorBox, field, toast } from "../../dom.js";
import { refreshAnnouncements } from "../../announcements.js";
import { isoFromLocal, when } from "./controls.js";

// A zoned time as a datetime-local input's value (local time, to the minute).
function localValue(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return new Date(moment.getTime() - moment.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

export async function render(container) {
  const state = await get("admin/maintenance");
  const status = h("p", { class: "maintenance-state", role: "status" });
  const showState = (current) => {
    status.dataset.enabled = String(current.enabled);
    replace(status, current.enabled
      ? [h("strong", {}, "Maintenance mode is on"), " since ", when(current.started_at)]
      : h("strong", {}, "Maintenance mode is off"));
  };
  showState(state);
  const enabled = h("input", { type: "checkbox", name: "enabled", role: "switch", checked: state.enabled });
  const message = h("textarea", { name: "message", maxlength: 500, rows: 2, placeholder: "What the maintenance page says" }, state.message || "");
  const ends = h("input", { name: "ends_at", type: "datetime-local", value: localValue(state.ends_at) });
  const errors = h("div");
  const save = h("button", { type: "submit", class: "button primary" }, "Save");
  replace(container,
    h("form", {
      class: "panel stack",
      "aria-label": "Maintenance mode",
      onsubmit: async (event) => {
        event.preventDefault();
        replace(errors);
        save.disabled = true;
        try {
          const changed = await put("admin/maintenance", {
            enabled: enabled.checked,
            message: message.value.trim() || null,
            ends_at: isoFromLocal(ends.value),
          });
          showState(changed);
          toast(changed.enabled ? "Maintenance mode is on: only admins can use the platform" : "Maintenance mode is off");
          refreshAnnouncements();
        } catch (error) {
          replace(errors, errorBox(error));
        } finally {
          save.disabled = false;
        }
      },
    },
      status,
      h("label", { class: "check" }, enabled, " Maintenance mode on"),
      field("Message", message, "Shown to everyone on the maintenance page"),
      field("Expected end", ends, "Optional; shown on the page"),
      errors,
      save));
}
