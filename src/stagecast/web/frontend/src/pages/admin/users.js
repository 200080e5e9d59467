// Users: search by username or email, filter by role and status; change a role, suspend or
// reinstate (suspension ends every session and socket at once), erase an account on its
// owner's behalf (right to erasure: the books stay balanced, the profile goes).
import { get, patch, del } from "../../api.js";
import { h, replace, choice, confirmButton, toast } from "../../dom.js";
import { cursorList, filterBar, filtersFrom, when } from "./controls.js";

const ROLES = [["viewer", "Viewer"], ["creator", "Creator"], ["moderator", "Moderator"], ["admin", "Admin"]];
const STATUSES = [["", "Any status"], ["active", "Active"], ["suspended", "Suspended"]];

export async function render(container, { me, query, navigate }) {
  const filters = filtersFrom(query, ["q", "role", "status"]);
  const bar = filterBar([
    ["Username or email", h("input", { name: "q", type: "search", maxlength: 64 })],
    ["Role", choice({ name: "role" }, [["", "Any role"], ...ROLES])],
    ["Status", choice({ name: "status" }, STATUSES)],
  ], { query, navigate });
  const paged = cursorList({
    load: (cursor) => get("admin/users", { ...filters, limit: 25, cursor }),
    item: (user) => userItem(user, me),
    empty: "Nobody matches.",
  });
  replace(container, bar, paged.element);
  await paged.ready;
}

function userItem(user, me) {
  const row = h("li", { class: "panel user-item", dataset: { id: user.id, username: user.username } });
  const draw = (current) => {
    const self = current.id === me.id;
    const role = choice({ name: "role", "aria-label": `Role of @${current.username}`, disabled: self }, ROLES, current.role);
    role.addEventListener("change", async () => {
      try {
        draw(await patch(`admin/users/${current.id}`, { role: role.value }));
        toast(`@${current.username} is now ${role.value === "admin" ? "an" : "a"} ${role.value}`);
      } catch (error) {
        role.value = current.role;
        toast(error.message, "error");
      }
    });
    const suspended = current.status === "suspended";
    const suspend = h("button", { type: "button", class: `button small${suspended ? "" : " danger"}`, disabled: self }, suspended ? "Reinstate" : "Suspend");
    suspend.addEventListener("click", async () => {
      suspend.disabled = true;
      try {
        draw(await patch(`admin/users/${current.id}`, { status: suspended ? "active" : "suspended" }));
        toast(suspended ? `@${current.username} is reinstated` : `@${current.username} is suspended and signed out everywhere`);
      } catch (error) {
        toast(error.message, "error");
        suspend.disabled = false;
      }
    });
    const erase = self ? null : confirmButton("Erase", `Erase @${current.username} for good`, async () => {
      try {
        await del(`admin/users/${current.id}`);
        toast(`@${current.username} was erased`);
        row.remove();
      } catch (error) {
        toast(error.message, "error");
      }
    });
    replace(row,
      h("div", { class: "user-who" },
        h("strong", {}, current.display_name), " ", h("span", { class: "muted" }, `@${current.username}`),
        suspended ? h("span", { class: "chip bad" }, "suspended") : null,
        h("p", { class: "muted" }, current.email, current.email_verified ? " (verified)" : "", " · joined ", when(current.created_at),
          " · ", h("a", { href: `/admin/audit?actor=${current.id}` }, "their audit trail"))),
      h("div", { class: "row user-actions" }, h("label", { class: "field" }, h("span", {}, "Role"), role), suspend, erase));
  };
  draw(user);
  return row;
}
