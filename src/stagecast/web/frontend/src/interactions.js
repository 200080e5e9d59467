// A channel's polls and reactions. The poll panel shows the active poll (vote, live bars, time
// left, the result), lets the owner and moderators start and end one; the reaction bar sends
// `reaction:send` and draws the room's `reaction:sent` bursts over the player.
import { get, post } from "./api.js";
import { h, replace, toast, errorBox, field } from "./dom.js";
import { EMOTES } from "./chat.js";

const MAX_FLOATERS = 12; // glyphs drawn per emoji and burst; the count says the rest

export function createPolls({ live, channel, me, canModerate }) {
  const body = h("div", { class: "poll-body" });
  const element = h("section", { class: "poll-panel", "aria-labelledby": "poll-title", hidden: true },
    h("h2", { id: "poll-title" }, "Poll"), body);
  let poll = null;
  let ticker = null;

  function show(next) {
    poll = next;
    clearInterval(ticker);
    element.hidden = !poll && !canModerate;
    if (!poll) return replace(body, canModerate ? startButton() : "");
    const ended = poll.status === "ended";
    const voted = poll.my_vote !== null && poll.my_vote !== undefined;
    const left = h("p", { class: "muted poll-time", role: "timer" });
    const tick = () => {
      const seconds = Math.max(0, Math.round((new Date(poll.ends_at) - Date.now()) / 1000));
      left.textContent = ended ? `Final results · ${poll.total_votes} votes` : `${seconds}s left · ${poll.total_votes} votes`;
    };
    tick();
    if (!ended) ticker = setInterval(tick, 1000);
    const choices = poll.choices.map((choice) => {
      const bar = h("span", { class: "poll-bar", style: `width: ${choice.percent}%` });
      const label = h("span", { class: "poll-label" },
        h("span", {}, choice.title, poll.my_vote === choice.index ? " ✓" : ""),
        h("span", { class: "poll-count" }, `${choice.votes} · ${choice.percent}%`));
      if (ended || voted || !me) {
        return h("div", { class: "poll-choice", dataset: { index: String(choice.index) } }, bar, label);
      }
      return h("button", {
        type: "button", class: "poll-choice votable", dataset: { index: String(choice.index) },
        onclick: () => vote(choice.index),
      }, bar, label);
    });
    replace(
      body,
      h("p", { class: "poll-question" }, poll.question),
      poll.subscribers_only ? h("p", { class: "muted" }, "Subscribers only") : null,
      h("div", { class: "poll-choices" }, choices),
      left,
      !me && !ended ? h("p", {}, h("a", { href: `/login?next=${encodeURIComponent(location.pathname)}` }, "Sign in to vote")) : null,
      canModerate && !ended ? h("button", { type: "button", class: "button small", onclick: end }, "End poll") : null,
      canModerate && ended ? startButton() : null,
    );
  }

  function tallied(tallies) {
    if (!poll || tallies.poll_id !== poll.id || poll.status === "ended") return;
    show({ ...poll, choices: tallies.choices, total_votes: tallies.total_votes });
  }

  async function vote(index) {
    try {
      show(await post(`polls/${poll.id}/vote`, { choice: index }));
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function end() {
    try {
      show(await post(`polls/${poll.id}/end`));
    } catch (error) {
      toast(error.message, "error");
    }
  }

  function startButton() {
    return h("button", { type: "button", class: "button small", onclick: () => replace(body, startForm()) }, "Start a poll");
  }

  function startForm() {
    const question = h("input", { name: "question", maxlength: 200, required: true });
    const inputs = h("div", { class: "stack poll-inputs" });
    const addChoice = () => {
      if (inputs.children.length >= 5) return;
      inputs.append(h("input", { name: "choice", maxlength: 60, required: inputs.children.length < 2, "aria-label": `Choice ${inputs.children.length + 1}` }));
    };
    addChoice();
    addChoice();
    const duration = h("select", { name: "duration" },
      [[60, "1 minute"], [120, "2 minutes"], [300, "5 minutes"], [600, "10 minutes"], [1800, "30 minutes"]]
        .map(([value, text]) => h("option", { value, selected: value === 120 }, text)));
    const subscribers = h("input", { type: "checkbox", name: "subscribers_only" });
    const errors = h("div");
    return h("form", {
      class: "stack poll-form", "aria-label": "Start a poll",
      onsubmit: async (event) => {
        event.preventDefault();
        replace(errors);
        const choices = [...inputs.querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
        try {
          show(await post("polls", {
            channel_id: channel.id, question: question.value.trim(), choices,
            duration: Number(duration.value), subscribers_only: subscribers.checked,
          }));
        } catch (error) {
          replace(errors, errorBox(error));
        }
      },
    },
    field("Question", question),
    inputs,
    h("button", { type: "button", class: "button small", onclick: addChoice }, "Add a choice"),
    field("Duration", duration),
    h("label", { class: "check" }, subscribers, " Subscribers only"),
    errors,
    h("div", { class: "row" },
      h("button", { type: "submit", class: "button primary" }, "Start"),
      h("button", { type: "button", class: "button", onclick: () => show(poll) }, "Cancel")));
  }

  live.on("poll:created", (p) => p.channel_id === channel.id && show(p));
  live.on("poll:voted", tallied);
  live.on("poll:ended", (p) => {
    if (!poll || p.id === poll.id) show({ ...p, my_vote: poll?.my_vote ?? null });
  });

  return {
    element,
    async load() {
      const page = await get(`channels/${channel.id}/polls`, { status: "active", limit: 1 });
      const active = page.data[0];
      show(active ? await get(`polls/${active.id}`) : null);
    },
    destroy() {
      clearInterval(ticker);
    },
  };
}

export function createReactions({ live, channel, me, overlayOn }) {
  const burst = h("div", { class: "reaction-burst", "aria-hidden": "true" });
  const tally = h("div", { class: "reaction-tally", role: "status", "aria-live": "polite" });
  overlayOn.append(burst, tally);
  const buttons = Object.entries(EMOTES).slice(0, 6).map(([code, glyph]) =>
    h("button", {
      type: "button", class: "reaction-button", title: code, "aria-label": `React ${code}`,
      onclick: async (event) => {
        if (!me) {
          location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
          return;
        }
        const button = event.currentTarget;
        button.disabled = true;
        try {
          await live.call("reaction:send", { channelId: channel.id, emoji: code });
        } catch (error) {
          toast(error.message, "error");
        } finally {
          setTimeout(() => (button.disabled = false), 250);
        }
      },
    }, glyph));
  const element = h("div", { class: "reaction-bar", role: "group", "aria-label": "Reactions" }, buttons);

  // The counts add up while bursts keep coming, and clear after a quiet moment.
  const counts = new Map();
  let quiet = null;
  live.on("reaction:sent", (p) => {
    if (p.channel_id !== channel.id) return;
    for (const r of p.reactions) {
      counts.set(r.emoji, { fallback: r.fallback, count: (counts.get(r.emoji)?.count || 0) + r.count });
      for (let i = 0; i < Math.min(r.count, MAX_FLOATERS); i++) {
        const glyph = h("span", { class: "floater", style: `left: ${5 + Math.random() * 90}%; animation-delay: ${Math.random() * 0.4}s` }, r.fallback);
        glyph.addEventListener("animationend", () => glyph.remove());
        burst.append(glyph);
      }
    }
    replace(tally, [...counts].map(([emoji, r]) => h("span", { class: "reaction-count", dataset: { emoji } }, `${r.fallback} ×${r.count}`)));
    clearTimeout(quiet);
    quiet = setTimeout(() => {
      counts.clear();
      replace(tally);
    }, 4000);
  });

  return {
    element,
    // Reactions go to live streams only.
    setLive(on) {
      element.hidden = !on;
    },
  };
}
