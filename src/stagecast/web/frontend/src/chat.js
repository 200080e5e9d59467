// The chat column: history, live messages with badges and emotes, deletions, moderation,
// and the room's money alerts (tips, donations, gifts, subscriptions, milestones).
import { get } from "./api.js";
import { h, replace, formatTokens, toast } from "./dom.js";
import { openReport } from "./report.js";

export const EMOTES = {
  scHype: "🙌",
  scLove: "❤️",
  scLol: "😂",
  scWave: "👋",
  scGG: "🎮",
  scClap: "👏",
  scPog: "😮",
  scSad: "😢",
  scFire: "🔥",
  scWow: "🤩",
};

const BADGES = {
  broadcaster: ["🎥", "Broadcaster"],
  staff: ["🛡️", "Staff"],
  moderator: ["⚔️", "Moderator"],
  subscriber: ["★", "Subscriber"],
};

const MAX_MESSAGES = 200;

export function fragmentNode(fragment) {
  switch (fragment.type) {
    case "link":
      return h("a", { href: fragment.url, rel: "noopener noreferrer nofollow ugc", target: "_blank" }, fragment.text);
    case "mention":
      return h("span", { class: "mention" }, fragment.text);
    case "emote":
      return h("span", { class: "emote", role: "img", "aria-label": fragment.emote, title: fragment.emote },
        EMOTES[fragment.emote] || fragment.text);
    default:
      return fragment.text;
  }
}

export function badges(list) {
  return (list || []).map((badge) => {
    const [icon, name] = BADGES[badge] || ["•", badge];
    return h("span", { class: `chat-badge badge-${badge}`, title: name, role: "img", "aria-label": name }, icon);
  });
}

/**
 * Mount the chat of a channel's room into `container`.
 * `live` is the page's socket (openSocket()); `me` the signed-in user or null;
 * `canModerate` whether the moderation actions show.
 */
export function createChat({ live, channel, me, canModerate = false }) {
  const log = h("ol", { class: "chat-log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Chat messages" });
  const input = h("input", { name: "message", maxlength: 500, autocomplete: "off", placeholder: "Say something…", "aria-label": "Chat message" });
  const send = h("button", { type: "submit", class: "button primary small" }, "Chat");
  const emotePicker = h(
    "details",
    { class: "emote-picker" },
    h("summary", { "aria-label": "Emotes" }, "🙂"),
    h(
      "div",
      { class: "emote-grid" },
      Object.entries(EMOTES).map(([name, glyph]) =>
        h("button", {
          type: "button",
          title: name,
          "aria-label": name,
          onclick: () => {
            input.value = `${input.value}${input.value && !input.value.endsWith(" ") ? " " : ""}${name} `;
            input.focus();
          },
        }, glyph),
      ),
    ),
  );
  const form = me
    ? h("form", { class: "chat-form", onsubmit: onSend }, emotePicker, input, send)
    : h("p", { class: "chat-signin" }, h("a", { href: `/login?next=${encodeURIComponent(location.pathname)}` }, "Sign in"), " to chat.");
  const element = h("aside", { class: "chat", "aria-label": "Chat" }, h("h2", { class: "chat-title" }, "Chat"), log, form);

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function add(item) {
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(item);
    while (log.children.length > MAX_MESSAGES) log.firstChild.remove();
    if (atEnd) scrollToEnd();
  }

  function notice(text, kind = "notice") {
    add(h("li", { class: `chat-${kind}` }, text));
  }

  // A message's menu: report it (someone else's), delete it (your own, or as a moderator),
  // time out or ban its author (moderators).
  function messageMenu(message) {
    if (!me) return null;
    const others = message.author.id !== me.id;
    const item = (label, title, action) =>
      h("button", { type: "button", role: "menuitem", title, onclick: () => {
        menu.open = false;
        action();
      } }, label);
    const items = [
      others ? item("Report", "Report this message to the platform's moderators", () =>
        openReport([{ content_type: "chat_message", content_id: message.id, label: `a message from ${message.author.display_name || message.author.username}` }])) : null,
      canModerate || !others ? item("Delete", "Delete this message", () => moderate("chat:delete", { messageId: message.id })) : null,
      canModerate && others ? item("Timeout", "Time out for 10 minutes", () => moderate("chat:timeout", { userId: message.author.id, duration: 600 })) : null,
      canModerate && others ? item("Ban", "Ban from this channel", () => moderate("chat:ban", { userId: message.author.id })) : null,
    ].filter(Boolean);
    const menu = h("details", { class: "chat-menu" },
      h("summary", { "aria-label": "Message actions", title: "Message actions" }, "⋯"),
      h("div", { class: "chat-menu-items", role: "menu" }, items));
    return menu;
  }

  function messageItem(message) {
    return h(
      "li",
      { class: "chat-message", dataset: { messageId: message.id, userId: message.author.id } },
      badges(message.author.badges),
      h("strong", { class: "chat-author" }, message.author.display_name || message.author.username),
      ": ",
      h("span", { class: "chat-body" }, message.fragments?.length ? message.fragments.map(fragmentNode) : message.body),
      messageMenu(message),
    );
  }

  function removeMessage(id, reason) {
    const item = log.querySelector(`[data-message-id="${CSS.escape(id)}"]`);
    if (!item) return;
    item.classList.add("deleted");
    replace(item.querySelector(".chat-body"), h("em", {}, reason));
    item.querySelector(".chat-menu")?.remove();
  }

  async function moderate(event, payload) {
    try {
      // Deleting names only the message; bans and timeouts name the channel's room.
      await live.call(event, event === "chat:delete" ? payload : { ...payload, channelId: channel.id });
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function onSend(event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send.disabled = true;
    try {
      await live.call("chat:send", { message: text, channelId: channel.id });
      input.value = "";
    } catch (error) {
      const wait = error.problem?.retry_after;
      notice(wait ? `${error.message} (wait ${Math.ceil(wait)} s)` : error.message, "error");
    } finally {
      send.disabled = false;
      input.focus();
    }
  }

  function alert(kind, text, detail) {
    const item = h("li", { class: `chat-alert alert-${kind}`, role: "note" }, h("strong", {}, text), detail ? h("span", {}, ` “${detail}”`) : null);
    add(item);
    toast(text);
    return item;
  }

  // A private tip reaches the creator twice: anonymously through the room and with its
  // sender through the creator's own room. One alert per contribution, the fuller one.
  const contributions = new Map();
  function contribution(kind, payload, text) {
    const earlier = contributions.get(payload.id);
    if (earlier) {
      if (payload.from_username && !earlier.named) {
        const item = h("li", { class: `chat-alert alert-${kind}`, role: "note" }, h("strong", {}, text), payload.message ? h("span", {}, ` “${payload.message}”`) : null);
        earlier.item.replaceWith(item);
        contributions.set(payload.id, { item, named: true });
      }
      return;
    }
    contributions.set(payload.id, { item: alert(kind, text, payload.message), named: Boolean(payload.from_username) });
  }

  const mine = (payload) => !payload.channel_id || payload.channel_id === channel.id;
  live.on("chat:message", (m) => mine(m) && add(messageItem(m)));
  live.on("chat:deleted", (p) => mine(p) && removeMessage(p.message_id, "message deleted"));
  live.on("chat:cleared", (p) => {
    if (!mine(p)) return;
    log.replaceChildren();
    notice("Chat was cleared by a moderator");
  });
  for (const kind of ["chat:ban", "chat:timeout"]) {
    live.on(kind, (p) => {
      if (!mine(p)) return;
      for (const id of p.purged_message_ids || []) removeMessage(id, "message removed by a moderator");
      notice(kind === "chat:ban" ? `${p.username} was banned` : `${p.username} was timed out`);
    });
  }
  live.on("chat:unban", (p) => mine(p) && notice("A user was unbanned"));
  live.on("chat:mode", (p) => {
    if (!mine(p)) return;
    const modes = [];
    if (p.slow_mode_seconds) modes.push(`slow mode (${p.slow_mode_seconds} s)`);
    if (p.followers_only_minutes !== null && p.followers_only_minutes !== undefined) modes.push("followers only");
    if (p.subscribers_only) modes.push("subscribers only");
    if (p.emote_only) modes.push("emote only");
    notice(modes.length ? `Chat is now in ${modes.join(", ")}` : "Chat modes are off");
  });
  live.on("chat:moderator_added", (p) => mine(p) && notice(`${p.username} is now a moderator`));
  live.on("tip:received", (p) => mine(p) && contribution("tip", p, `${p.from_username || "Someone"} tipped ${formatTokens(p.tokens)}!`));
  live.on("donation:received", (p) => mine(p) && contribution("tip", p, `${p.from_username || "Someone"} donated ${formatTokens(p.tokens)}!`));
  live.on("gift:sent", (p) => mine(p) && contribution("gift", p, `${p.from_username || "Someone"} sent ${p.gift_name || p.gift || "a gift"} (${formatTokens(p.tokens)})!`));
  live.on("subscription:new", (p) => mine(p) && alert("sub", p.is_gift ? `${p.gifted_by} gifted a subscription to ${p.username}!` : `${p.username} subscribed at tier ${p.tier}!`));
  live.on("milestone:reached", (p) => mine(p) && alert("milestone", `Milestone: ${p.value} ${p.kind}!`));

  async function loadHistory(id) {
    if (!id) return;
    try {
      const page = await get(`streams/${id}/chat`, { limit: 50 });
      log.replaceChildren(...page.data.reverse().map(messageItem));
      scrollToEnd();
    } catch {
      notice("Earlier messages could not be loaded", "error");
    }
  }

  return {
    element,
    loadHistory,
    notice,
  };
}
