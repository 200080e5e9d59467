// The admin console at /admin/<section>: the moderation queue, reports, KYC review, users,
// analytics, the audit log, announcements, feature flags and maintenance mode. Staff only:
// everyone else gets a page saying so, and the console asks the API for nothing on their
// behalf. Each section is a module of its own under admin/, drawn into the console's body.
import { currentUser, isStaff } from "../auth.js";
import { h, replace } from "../dom.js";
import { requireUser } from "../signin.js";
import * as queue from "./admin/queue.js";
import * as reports from "./admin/reports.js";
import * as kyc from "./admin/kyc.js";
import * as users from "./admin/users.js";
import * as analytics from "./admin/analytics.js";
import * as audit from "./admin/audit.js";
import * as announcements from "./admin/announcements.js";
import * as flags from "./admin/flags.js";
import * as maintenance from "./admin/maintenance.js";

// [path, name, module, the lowest role that the section's API accepts]
const SECTIONS = [
  ["queue", "Queue", queue, "moderator"],
  ["reports", "Reports", reports, "admin"],
  ["kyc", "KYC review", kyc, "admin"],
  ["users", "Users", users, "admin"],
  ["analytics", "Analytics", analytics, "admin"],
  ["audit", "Audit log", audit, "admin"],
  ["announcements", "Announcements", announcements, "admin"],
  ["flags", "Feature flags", flags, "admin"],
  ["maintenance", "Maintenance", maintenance, "admin"],
];
const RANK = ["viewer", "creator", "moderator", "admin"];
const allowed = (user, role) => RANK.indexOf(user?.role) >= RANK.indexOf(role);

function notAllowed(main) {
  document.title = "Not allowed · Stagecast";
  replace(
    main,
    h("section", { class: "panel narrow not-allowed" },
      h("h1", {}, "Not allowed"),
      h("p", {}, "The admin console is for the platform's staff. Your account cannot open it."),
      h("a", { href: "/", class: "button" }, "Back to the live streams")),
  );
}

export async function render({ main, params, query, navigate }) {
  const me = requireUser(navigate);
  if (!me) return;
  const mine = SECTIONS.filter(([, , , role]) => allowed(me, role));
  if (!isStaff(me) || !mine.length) return notAllowed(main);
  const wanted = params[0] || mine[0][0];
  const section = mine.find(([path]) => path === wanted);
  if (!section) {
    if (SECTIONS.some(([path]) => path === wanted)) return notAllowed(main);
    throw Object.assign(new Error("No such section"), { status: 404 });
  }
  const [path, name, module] = section;
  document.title = `${name} · Admin · Stagecast`;
  const body = h("div", { class: "admin-body" });
  replace(
    main,
    h("div", { class: "admin" },
      h("nav", { class: "admin-nav", "aria-label": "Admin console" },
        h("p", { class: "admin-title" }, "Admin console"),
        h("ul", {}, mine.map(([p, label]) =>
          h("li", {}, h("a", { href: `/admin/${p}`, "aria-current": p === path ? "page" : null }, label))))),
      h("section", { class: "admin-section", "aria-labelledby": "admin-heading" },
        h("h1", { id: "admin-heading" }, name),
        body)),
  );
  return module.render(body, { me: currentUser(), query, navigate });
}
