// Tournaments: the list (open, running, finished), and a form to organise one.
import { get, post } from "../api.js";
import { currentUser } from "../auth.js";
import { h, replace, formatDate, formatTokens, errorBox, field } from "../dom.js";

const STATUSES = [["open", "Open"], ["running", "Running"], ["completed", "Finished"]];

export async function render({ main, navigate }) {
  document.title = "Tournaments · Stagecast";
  const pages = await Promise.all(STATUSES.map(([status]) => get("tournaments", { status, limit: 20 })));
  const me = currentUser();
  replace(
    main,
    h("section", { class: "page", "aria-labelledby": "tournaments-title" },
      h("h1", { id: "tournaments-title" }, "Tournaments"),
      STATUSES.map(([, title], n) =>
        h("section", { class: "tournament-group" },
          h("h2", {}, title),
          pages[n].data.length
            ? h("ul", { class: "tournament-list" }, pages[n].data.map(summary))
            : h("p", { class: "muted" }, "None right now."))),
      me ? createForm(navigate) : h("p", {}, h("a", { href: "/login?next=/tournaments" }, "Sign in"), " to organise one."),
    ),
  );
}

function summary(t) {
  return h("li", { class: "tournament-card" },
    h("a", { href: `/tournaments/${t.id}` }, t.name),
    h("span", { class: "muted" },
      ` · ${t.category} · ${t.format.replace("_", " ")} · ${t.participant_count}/${t.max_participants} players · `,
      t.entry_fee_tokens ? `entry ${formatTokens(t.entry_fee_tokens)}` : "free entry",
      ` · ${formatDate(t.starts_at)}`));
}

function createForm(navigate) {
  const inputs = {
    name: h("input", { name: "name", required: true, maxlength: 100 }),
    category: h("input", { name: "category", required: true, maxlength: 64 }),
    format: h("select", { name: "format" },
      h("option", { value: "single_elimination" }, "Single elimination"),
      h("option", { value: "double_elimination" }, "Double elimination"),
      h("option", { value: "round_robin" }, "Round robin")),
    max: h("input", { name: "max_participants", type: "number", min: 2, max: 256, value: 8 }),
    starts: h("input", { name: "starts_at", type: "datetime-local", required: true }),
    fee: h("input", { name: "entry_fee_tokens", type: "number", min: 0, value: 0 }),
    split: h("input", { name: "prize_split", value: "100", "aria-describedby": "split-hint" }),
  };
  const errors = h("div");
  const form = h("form", {
    class: "panel",
    onsubmit: async (event) => {
      event.preventDefault();
      replace(errors);
      try {
        const made = await post("tournaments", {
          name: inputs.name.value,
          category: inputs.category.value,
          format: inputs.format.value,
          max_participants: Number(inputs.max.value),
          starts_at: new Date(inputs.starts.value).toISOString(),
          entry_fee_tokens: Number(inputs.fee.value || 0),
          prize_split: inputs.split.value.split(",").map((p) => Number(p.trim())),
        });
        navigate(`/tournaments/${made.id}`);
      } catch (error) {
        replace(errors, errorBox(error));
      }
    },
  },
  h("h2", {}, "Organise a tournament"),
  field("Name", inputs.name),
  field("Category", inputs.category, "the game, e.g. chess"),
  field("Format", inputs.format),
  field("Players at most", inputs.max),
  field("Starts", inputs.starts),
  field("Entry fee (tokens)", inputs.fee, "paid into the prize pool; refunded if you cancel"),
  field("Prize split (%)", inputs.split, "per place, first place first, e.g. 70, 30"),
  errors,
  h("button", { type: "submit", class: "button primary" }, "Create"));
  return form;
}
