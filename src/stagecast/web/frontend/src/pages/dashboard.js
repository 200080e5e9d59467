// The creator dashboard: live stats, viewers over the last streams, revenue and payouts,
// subscription tiers and subscribers, chat settings, moderators and bans.
import { get, post, patch, del } from "../api.js";
import { h, replace, field, errorBox, toast, stat, formatNumber, formatTokens, formatDate, formatDuration } from "../dom.js";
import { openSocket } from "../realtime.js";
import { streamHealthNotice } from "../streamhealth.js";
import { requireUser } from "../signin.js";

const SUBSCRIBERS_PAGE = 25;
const PAYOUTS_SHOWN = 20; // the newest payouts

export async function render({ main, navigate }) {
  const me = requireUser(navigate);
  if (!me) return;
  document.title = "Dashboard · Stagecast";
  const key = await get("live/streams/me/key"); // makes the channel on first visit
  const channel = await get(`channels/${key.channel_id}`);
  const [analytics, revenue, balance, payouts, settings, tiers] = await Promise.all([
    get(`channels/${channel.id}/analytics`, { days: 30 }),
    get(`channels/${channel.id}/revenue`),
    get("sell/balance"),
    get("payouts", { limit: PAYOUTS_SHOWN }).then((page) => page.data),
    get(`channels/${channel.id}/settings`),
    get(`channels/${channel.id}/subscription-tiers`).then((page) => page.data),
  ]);

  const live = openSocket();
  const health = streamHealthNotice(live, key.stream_health);
  const liveViewers = h("strong", { class: "stat-value" }, channel.is_live ? "…" : "Offline");
  // The room counts whoever is in it, the dashboard too: a count means nothing off air.
  let onAir = channel.is_live;
  const showViewers = (count) => (liveViewers.textContent = onAir ? formatNumber(count) : "Offline");
  live.socket.on("connect", () =>
    live.call("stream:join", { channelId: channel.id })
      .then((j) => {
        onAir = j.is_live;
        showViewers(j.viewer_count);
      })
      .catch(() => null));
  live.on("viewers:updated", (p) => showViewers(p.viewer_count));
  live.on("stream:started", () => {
    onAir = true;
    showViewers(0);
  });
  live.on("stream:ended", () => {
    onAir = false;
    showViewers(0);
  });

  const chart = h("div", { class: "chart", role: "img", "aria-label": "Peak and average viewers of your recent streams" });

  replace(
    main,
    h("section", { class: "page dashboard" },
      h("h1", {}, "Creator dashboard"),
      h("p", { class: "muted" }, h("a", { href: `/${channel.slug}` }, channel.name), " · ", h("a", { href: "/dashboard/live" }, "Go live")),
      health,
      h("div", { class: "stats" },
        stat("Watching now", liveViewers),
        stat("Followers", formatNumber(analytics.follower_count)),
        stat("Streams (30 days)", formatNumber(analytics.streams)),
        stat("Hours streamed", analytics.hours_streamed.toFixed(1)),
        stat("Peak viewers", formatNumber(analytics.peak_viewers)),
        stat("Average viewers", analytics.average_viewers.toFixed(1)),
      ),
      h("section", { class: "panel", "aria-labelledby": "chart-title" },
        h("h2", { id: "chart-title" }, "Viewers over your last streams"),
        analytics.recent_streams.length ? chart : h("p", { class: "empty" }, "Stream to see your viewers here."),
        streamsTable(analytics.recent_streams)),
      revenuePanel(revenue, balance, payouts),
      tiersPanel(channel, tiers),
      await subscribersPanel(channel),
      chatSettingsPanel(channel, settings),
      await moderatorsPanel(channel),
      await bansPanel(channel),
    ),
  );
  if (analytics.recent_streams.length) await drawChart(chart, analytics.recent_streams);
  return () => live.close();
}

function streamsTable(rows) {
  if (!rows.length) return null;
  return h("table", { class: "table" },
    h("caption", { class: "visually-hidden" }, "Recent streams"),
    h("thead", {}, h("tr", {}, ["Stream", "Started", "Length", "Peak", "Average"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((s) => h("tr", {},
      h("td", {}, s.title), h("td", {}, formatDate(s.started_at)), h("td", {}, formatDuration(s.duration_seconds)),
      h("td", {}, formatNumber(s.peak_viewers)), h("td", {}, s.average_viewers.toFixed(1))))));
}

async function drawChart(container, rows) {
  const { default: uPlot } = await import("uplot");
  // One slot per stream, oldest first: a bar for the peak, a line for the average.
  const ordered = [...rows].filter((s) => s.started_at).sort((a, b) => a.started_at.localeCompare(b.started_at));
  const data = [
    ordered.map((_s, i) => i + 1),
    ordered.map((s) => s.peak_viewers),
    ordered.map((s) => Number(s.average_viewers.toFixed(2))),
  ];
  const day = (i) => {
    const stream = ordered[Math.round(i) - 1];
    return stream ? new Date(stream.started_at).toLocaleDateString(undefined, { month: "short", day: "numeric" }) : "";
  };
  const styles = getComputedStyle(document.documentElement);
  const accent = styles.getPropertyValue("--accent").trim() || "#9b5cff";
  const text = styles.getPropertyValue("--text").trim() || "#eee";
  const grid = { stroke: "rgba(127,127,127,0.2)" };
  const size = () => ({ width: Math.max(260, container.clientWidth || 600), height: 220 });
  const plot = new uPlot(
    {
      ...size(),
      scales: {
        x: { time: false, range: () => [0.5, ordered.length + 0.5] },
        y: { range: (_u, _min, max) => [0, Math.max(2, Math.ceil(max * 1.15))] },
      },
      series: [
        { label: "Stream", value: (_u, i) => (i == null ? "--" : `${ordered[i - 1]?.title ?? ""} (${day(i)})`) },
        { label: "Peak viewers", stroke: accent, fill: `${accent}88`, paths: uPlot.paths.bars({ size: [0.5, 60] }), points: { show: false } },
        { label: "Average viewers", stroke: "#2bb673", width: 2, points: { size: 7, fill: "#2bb673" } },
      ],
      axes: [
        { stroke: text, grid, splits: () => data[0], values: (_u, splits) => splits.map(day) },
        { stroke: text, grid, size: 40 },
      ],
    },
    data,
    container,
  );
  new ResizeObserver(() => plot.setSize(size())).observe(container);
}

function revenuePanel(revenue, balance, payouts) {
  const tokens = h("input", { type: "number", name: "tokens", min: balance.minimum_payout_tokens, step: 1, value: balance.available_tokens, inputmode: "numeric" });
  const errors = h("div");
  const list = h("div");
  const showPayouts = (items) => replace(list, items.length
    ? h("table", { class: "table" },
        h("caption", { class: "visually-hidden" }, "Payouts"),
        h("thead", {}, h("tr", {}, ["Requested", "Tokens", "Amount", "Status"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, items.map((p) => h("tr", {},
          h("td", {}, formatDate(p.created_at)), h("td", {}, formatNumber(p.tokens)),
          h("td", {}, new Intl.NumberFormat(undefined, { style: "currency", currency: p.currency }).format(p.amount_cents / 100)),
          h("td", {}, p.status + (p.failure_reason ? ` (${p.failure_reason})` : ""))))))
    : h("p", { class: "empty" }, "No payouts yet."));
  showPayouts(payouts);
  const sources = Object.entries(revenue.by_source);
  return h("section", { class: "panel", "aria-labelledby": "revenue-title" },
    h("h2", { id: "revenue-title" }, "Revenue and payouts"),
    h("div", { class: "stats" },
      stat("Earned (after fees)", formatTokens(revenue.total_tokens)),
      stat("Available to pay out", formatTokens(balance.available_tokens)),
      stat("In pending payouts", formatTokens(balance.pending_tokens)),
      stat("Subscriptions", formatTokens(revenue.by_source.subscription || 0)),
    ),
    sources.length
      ? h("ul", { class: "list" }, sources.map(([kind, amount]) => h("li", {}, `${kind}: ${formatTokens(amount)}`)))
      : h("p", { class: "empty" }, "No tips, gifts or subscriptions yet."),
    h("form", {
      class: "row",
      onsubmit: async (event) => {
        event.preventDefault();
        replace(errors);
        try {
          await post("payouts/request", { tokens: Number(tokens.value) }, { moves: true });
          toast("Payout requested");
          showPayouts((await get("payouts", { limit: PAYOUTS_SHOWN })).data);
        } catch (error) {
          replace(errors, errorBox(error));
        }
      },
    },
      field("Tokens to pay out", tokens, `At least ${formatNumber(balance.minimum_payout_tokens)}`),
      h("button", { type: "submit", class: "button" }, "Request payout")),
    errors,
    h("h3", {}, "Payouts"),
    list,
  );
}

function tiersPanel(channel, tiers) {
  return h("section", { class: "panel", "aria-labelledby": "tiers-title" },
    h("h2", { id: "tiers-title" }, "Subscription tiers"),
    h("p", { class: "muted" }, "New subscribers appear in your chat as alerts. Prices are tokens a month."),
    h("div", { class: "stack" }, tiers.map((tier) => {
      const price = h("input", { type: "number", min: 1, step: 1, value: tier.tokens_per_month, inputmode: "numeric" });
      return h("form", {
        class: "row",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            await patch(`channels/${channel.id}/subscription-tiers/${tier.level}`, { tokens_per_month: Number(price.value) });
            toast(`${tier.name} saved`);
          } catch (error) {
            toast(error.message, "error");
          }
        },
      }, field(`${tier.name} (tier ${tier.level})`, price), h("button", { type: "submit", class: "button small" }, "Save"));
    })),
  );
}

// Paid-up subscribers, newest first, a page at a time.
async function subscribersPanel(channel) {
  const first = await get(`channels/${channel.id}/subscribers`, { limit: SUBSCRIBERS_PAGE });
  const rows = h("tbody");
  const more = h("button", { type: "button", class: "button small", hidden: !first.has_more }, "Show more subscribers");
  let cursor = first.next_cursor;
  const addRows = (items) => rows.append(...items.map((s) => h("tr", { dataset: { username: s.username } },
    h("td", {}, s.display_name || s.username, h("span", { class: "muted" }, ` @${s.username}`)),
    h("td", {}, s.tier_name),
    h("td", {}, formatNumber(s.months)),
    h("td", {}, formatDate(s.started_at)),
    h("td", {}, `${s.auto_renew ? "Renews" : "Ends"} ${formatDate(s.current_period_end)}`),
    h("td", {}, s.is_gift ? "Gift" : "Paid"))));
  addRows(first.data);
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await get(`channels/${channel.id}/subscribers`, { limit: SUBSCRIBERS_PAGE, cursor });
      addRows(page.data);
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
    } catch (error) {
      toast(error.message, "error");
    } finally {
      more.disabled = false;
    }
  });
  return h("section", { class: "panel", "aria-labelledby": "subscribers-title" },
    h("h2", { id: "subscribers-title" }, "Subscribers"),
    first.data.length
      ? h("div", { class: "table-scroll" },
          h("table", { class: "table subscribers" },
            h("caption", { class: "visually-hidden" }, "Subscribers"),
            h("thead", {}, h("tr", {}, ["Subscriber", "Tier", "Months", "Since", "Period", "How"].map((t) => h("th", { scope: "col" }, t)))),
            rows))
      : h("p", { class: "empty" }, "No subscribers yet."),
    more);
}

function chatSettingsPanel(channel, settings) {
  const chat = settings.chat;
  const slow = h("input", { type: "number", min: 0, max: 3600, value: chat.slow_mode_seconds, inputmode: "numeric" });
  const followers = h("input", { type: "number", min: 0, value: chat.followers_only_minutes ?? "", placeholder: "off", inputmode: "numeric" });
  const subscribers = h("input", { type: "checkbox", checked: chat.subscribers_only });
  const emotes = h("input", { type: "checkbox", checked: chat.emote_only });
  const blocked = h("textarea", { rows: 2 }, chat.blocked_terms.join(", "));
  const rules = h("textarea", { rows: 3 }, chat.rules.join("\n"));
  const reconnect = h("input", { type: "number", min: 0, max: 600, value: settings.reconnect_window_seconds, inputmode: "numeric" });
  const recording = h("input", { type: "checkbox", checked: settings.recording_enabled });
  const errors = h("div");
  return h("form", {
    class: "panel stack",
    "aria-labelledby": "chat-settings-title",
    onsubmit: async (event) => {
      event.preventDefault();
      replace(errors);
      try {
        await patch(`channels/${channel.id}/settings`, {
          chat: {
            slow_mode_seconds: Number(slow.value || 0),
            followers_only_minutes: followers.value === "" ? null : Number(followers.value),
            subscribers_only: subscribers.checked,
            emote_only: emotes.checked,
            blocked_terms: blocked.value.split(",").map((t) => t.trim()).filter(Boolean),
            rules: rules.value.split("\n").map((t) => t.trim()).filter(Boolean),
          },
          reconnect_window_seconds: Number(reconnect.value || 0),
          recording_enabled: recording.checked,
        });
        toast("Settings saved");
      } catch (error) {
        replace(errors, errorBox(error));
      }
    },
  },
    h("h2", { id: "chat-settings-title" }, "Chat and stream settings"),
    field("Slow mode (seconds between messages, 0 = off)", slow),
    field("Followers only (minimum minutes followed; empty = off)", followers),
    h("label", { class: "check" }, subscribers, " Subscribers only"),
    h("label", { class: "check" }, emotes, " Emote only"),
    field("Blocked terms (comma separated)", blocked),
    field("Chat rules (one a line)", rules),
    field("Reconnect window (seconds a dropped stream waits for you)", reconnect),
    h("label", { class: "check" }, recording, " Keep recordings as past broadcasts"),
    errors,
    h("button", { type: "submit", class: "button" }, "Save settings"));
}

async function moderatorsPanel(channel) {
  const list = h("ul", { class: "list" });
  const username = h("input", { name: "username", autocomplete: "off", required: true });
  const show = async () => {
    const page = await get(`channels/${channel.id}/moderators`);
    replace(list, page.data.length ? page.data.map((m) => h("li", {},
      m.user.display_name || m.user.username, h("span", { class: "muted" }, ` @${m.user.username} `),
      h("button", { type: "button", class: "button small ghost", onclick: async () => {
        try {
          await del(`channels/${channel.id}/moderators/${m.user.id}`);
          await show();
        } catch (error) {
          toast(error.message, "error");
        }
      } }, "Remove"))) : h("li", { class: "empty" }, "No moderators yet."));
  };
  await show();
  return h("section", { class: "panel", "aria-labelledby": "mods-title" },
    h("h2", { id: "mods-title" }, "Moderators"),
    list,
    h("form", { class: "row", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await post(`channels/${channel.id}/moderators`, { username: username.value.trim() });
        username.value = "";
        await show();
      } catch (error) {
        toast(error.message, "error");
      }
    } }, field("Username", username), h("button", { type: "submit", class: "button small" }, "Add moderator")));
}

async function bansPanel(channel) {
  const list = h("ul", { class: "list" });
  const username = h("input", { name: "username", autocomplete: "off", required: true });
  const minutes = h("input", { type: "number", min: 1, placeholder: "ban", inputmode: "numeric" });
  const show = async () => {
    const page = await get(`channels/${channel.id}/bans`, { limit: 100 });
    replace(list, page.data.length ? page.data.map((b) => h("li", {},
      b.user.username,
      h("span", { class: "muted" }, b.expires_at ? ` timed out until ${formatDate(b.expires_at)}` : " banned", b.reason ? ` (${b.reason}) ` : " "),
      h("button", { type: "button", class: "button small ghost", onclick: async () => {
        try {
          await del(`channels/${channel.id}/bans/${b.user.id}`);
          await show();
        } catch (error) {
          toast(error.message, "error");
        }
      } }, "Unban"))) : h("li", { class: "empty" }, "Nobody is banned."));
  };
  await show();
  return h("section", { class: "panel", "aria-labelledby": "bans-title" },
    h("h2", { id: "bans-title" }, "Bans and timeouts"),
    list,
    h("form", { class: "row", onsubmit: async (event) => {
      event.preventDefault();
      const body = { username: username.value.trim() };
      if (minutes.value) body.duration_seconds = Number(minutes.value) * 60;
      try {
        await post(`channels/${channel.id}/bans`, body);
        username.value = "";
        minutes.value = "";
        await show();
      } catch (error) {
        toast(error.message, "error");
      }
    } }, field("Username", username), field("Timeout minutes (empty = ban)", minutes), h("button", { type: "submit", class: "button small" }, "Ban")));
}
