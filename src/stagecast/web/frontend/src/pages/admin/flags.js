// Feature flags: what each one gates, its default, and a switch that takes effect on every
// node at once.
import { get, put } from "../../api.js";
import { h, replace, toast } from "../../dom.js";
import { when } from "./controls.js";

export async function render(container) {
  const { data } = await get("admin/feature-flags");
  replace(container, h("ul", { class: "admin-list flags" }, data.map(flagItem)));
}

function flagItem(flag) {
  const row = h("li", { class: "panel flag-item", dataset: { name: flag.name } });
  const draw = (current) => {
    const toggle = h("input", { type: "checkbox", name: current.name, checked: current.enabled, role: "switch" });
    toggle.addEventListener("change", async () => {
      toggle.disabled = true;
      try {
        const changed = await put(`admin/feature-flags/${encodeURIComponent(current.name)}`, { enabled: toggle.checked });
        draw(changed);
        toast(`${changed.name} is ${changed.enabled ? "on" : "off"}`);
      } catch (error) {
        toggle.checked = current.enabled;
        toggle.disabled = false;
        toast(error.message, "error");
      }
    });
    replace(row,
      h("label", { class: "check" }, toggle, h("strong", {}, current.name)),
      h("p", {}, current.description),
      h("p", { class: "muted" },
        `Default: ${current.default ? "on" : "off"}`,
        current.updated_at ? [" · changed ", when(current.updated_at)] : null));
  };
  draw(flag);
  return row;
}
