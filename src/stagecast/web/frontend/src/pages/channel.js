// A channel: the player and chat side by side, follow / tip / subscribe, the viewer count,
// and past broadcasts. Live state comes from the channel's room events.
import { get, post, del } from "../api.js";
import { currentUser } from "../auth.js";
import { h, replace, formatNumber, formatTokens, formatDate, errorBox, toast, field } from "../dom.js";
import { openSocket } from "../realtime.js";
import { createPlayer } from "../player.js";
import { clipButton, clipCard, liveClipSource } from "../clips.js";
import { createChat } from "../chat.js";
import { grid, vodCard } from "../cards.js";
import { createPolls, createReactions } from "../interactions.js";
import { createSupporters } from "../leaderboard.js";
import { reportButton } from "../report.js";

const VOD_POLL_MS = 3000;
const VOD_POLL_TRIES = 40;
const GIFT_ICONS = { heart: "❤️", rose: "🌹", confetti: "🎉", trophy: "🏆", rocket: "🚀", castle: "🏰" };

export async function render({ main, params }) {
  const slug = params[0].toLowerCase();
  const channel = await get(`channels/${encodeURIComponent(slug)}`);
  const me = currentUser();
  const owner = me?.id === channel.owner.id;
  const [stream, vods, moderators] = await Promise.all([
    channel.live_stream_id ? get(`streams/${channel.live_stream_id}`) : null,
    get(`channels/${channel.id}/vods`, { limit: 12 }),
    get(`channels/${channel.id}/moderators`).then((page) => page.data).catch(() => []),
  ]);
  const canModerate = Boolean(
    me && (owner || ["moderator", "admin"].includes(me.role) || moderators.some((m) => m.user.id === me.id)),
  );
  document.title = `${channel.name} · Stagecast`;

  const live = openSocket();
  const player = createPlayer({ label: `${channel.name}'s stream` });
  const chat = createChat({ live, channel, me, canModerate });
  const polls = createPolls({ live, channel, me, canModerate });
  const reactions = createReactions({ live, channel, me, overlayOn: player.element });
  const supporters = createSupporters({ live, channel });
  let streamId = stream?.status === "live" ? stream.id : null;
  let loaded = false;
  let vodTimer = null;
  // Tips go to the live stream; while the channel is offline the same form sends a donation
  // to the channel (tips refuse an ended stream). An open form follows the stream's state.
  let showTipMode = () => {};

  const title = h("p", { class: "stream-title" }, stream?.status === "live" ? stream.title : "");
  const category = h("span", { class: "stream-category" });
  const viewers = h("span", { class: "viewer-count", "aria-live": "polite" });
  const status = h("p", { class: "stream-status muted", role: "status" });
  const vodList = h("div", { id: "vods" }, grid(vods.data.map(vodCard), "No past broadcasts yet."));
  const clipper = clipButton({
    video: player.video,
    source: (video) => liveClipSource(streamId)(video),
    onSaved: () => loadClips(),
  });
  const clipBar = h("div", { class: "clip-bar", hidden: !streamId }, clipper.button);
  const clipList = h("div", { id: "clips" });
  const clipSort = h("select", { "aria-label": "Sort clips" },
    h("option", { value: "views" }, "Most viewed"),
    h("option", { value: "likes" }, "Most liked"),
    h("option", { value: "recent" }, "Newest"));
  async function loadClips() {
    const page = await get(`channels/${channel.id}/clips`, { sort: clipSort.value, limit: 12 }).catch(() => ({ data: [] }));
    replace(clipList, grid(page.data.map(clipCard), "No clips yet."));
  }
  clipSort.addEventListener("change", loadClips);
  live.on("clip:created", () => loadClips());
  const followers = h("span", { class: "muted" }, followerText(channel.follower_count));

  function showCategory(slugOrNull) {
    replace(category, slugOrNull ? h("a", { class: "chip", href: `/browse?category=${encodeURIComponent(slugOrNull)}` }, slugOrNull) : "");
  }
  function showViewers(count) {
    viewers.textContent = streamId ? `${formatNumber(count)} watching` : "";
  }
  showCategory(stream?.status === "live" ? stream.category : channel.category);
  showViewers(stream?.viewer_count || 0);
  player.setState(streamId ? "loading" : "offline");
  reactions.setLive(Boolean(streamId));

  function startPlayback() {
    if (!streamId || loaded) return;
    loaded = true;
    player.load(`/hls/${streamId}/master.m3u8`);
  }

  // --- live events ---------------------------------------------------------------------
  live.socket.on("connect", async () => {
    try {
      const joined = await live.call("stream:join", { channelId: channel.id });
      showViewers(joined.viewer_count);
      if (joined.is_live && joined.stream_id !== streamId) {
        streamId = joined.stream_id;
        clipBar.hidden = false;
        loaded = false;
        player.setState("loading");
        reactions.setLive(true);
        showTipMode();
      }
    } catch (error) {
      toast(error.message, "error");
    }
  });
  live.on("stream:started", (p) => {
    streamId = p.stream_id;
    loaded = false;
    clearTimeout(vodTimer);
    title.textContent = p.title;
    showCategory(p.category);
    status.textContent = "";
    player.setState("loading");
    reactions.setLive(true);
    showTipMode();
    clipBar.hidden = false;
    chat.notice(`${channel.name} went live`);
  });
  // Segments are on the server: the playlist can be loaded without a 404.
  live.on("stream:segments", (p) => {
    if (p.stream_id === streamId) startPlayback();
  });
  live.on("stream:updated", (p) => {
    if (p.stream_id !== streamId) return;
    title.textContent = p.title;
    showCategory(p.category);
  });
  live.on("stream:reconnecting", () => player.setState("reconnecting"));
  live.on("stream:resumed", () => player.setState(loaded ? "playing" : "loading"));
  live.on("stream:ended", (p) => {
    if (p.stream_id !== streamId) return;
    player.stop("ended");
    loaded = false;
    const ended = streamId;
    streamId = null;
    clipBar.hidden = true;
    clipper.editor.hidden = true;
    showViewers(0);
    reactions.setLive(false);
    showTipMode();
    chat.notice("The stream has ended");
    waitForVod(ended);
  });
  live.on("viewers:updated", (p) => showViewers(p.viewer_count));
  live.on("follow:new", (p) => {
    if (p.follower_count !== undefined) followers.textContent = followerText(p.follower_count);
  });

  // The recording becomes a VOD shortly after the end: show it as soon as it is there.
  function waitForVod(endedId, tries = 0) {
    vodTimer = setTimeout(async () => {
      try {
        const page = await get(`channels/${channel.id}/vods`, { limit: 12 });
        replace(vodList, grid(page.data.map(vodCard), "No past broadcasts yet."));
        const vod = page.data.find((v) => v.stream_id === endedId);
        if (vod) {
          replace(status, "The recording is ready: ", h("a", { href: `/vods/${vod.id}` }, "watch it"));
          return;
        }
      } catch {
        // try again below
      }
      if (tries < VOD_POLL_TRIES) waitForVod(endedId, tries + 1);
    }, VOD_POLL_MS);
  }

  // --- follow, tip, subscribe ----------------------------------------------------------
  const actions = h("div", { class: "channel-actions" });
  const panel = h("div", { class: "action-panel" });

  if (owner) {
    actions.append(
      h("a", { class: "button primary", href: "/dashboard/live" }, "Go live"),
      h("a", { class: "button", href: "/dashboard" }, "Dashboard"),
    );
  } else if (!me) {
    const next = `/login?next=${encodeURIComponent(location.pathname)}`;
    actions.append(
      h("a", { class: "button primary", href: next }, "Follow"),
      h("a", { class: "button", href: next }, "Tip"),
      h("a", { class: "button", href: next }, "Gift"),
      h("a", { class: "button", href: next }, "Subscribe"),
    );
  } else {
    const state = await get(`channels/${channel.id}/follow`);
    const follow = h("button", { type: "button", class: "button primary", "aria-pressed": String(state.following) });
    const showFollow = (following) => {
      follow.textContent = following ? "Following ✓" : "Follow";
      follow.setAttribute("aria-pressed", String(following));
    };
    showFollow(state.following);
    follow.addEventListener("click", async () => {
      follow.disabled = true;
      try {
        const following = follow.getAttribute("aria-pressed") === "true";
        const answer = following ? await del(`channels/${channel.id}/follow`) : await post(`channels/${channel.id}/follow`);
        showFollow(answer.following);
        followers.textContent = followerText(answer.follower_count);
      } catch (error) {
        toast(error.message, "error");
      } finally {
        follow.disabled = false;
      }
    });
    actions.append(
      follow,
      h("button", { type: "button", class: "button", "aria-expanded": "false", "aria-controls": "action-panel", onclick: (e) => toggle(e.currentTarget, tipForm) }, "Tip"),
      h("button", { type: "button", class: "button", "aria-expanded": "false", "aria-controls": "action-panel", onclick: (e) => toggle(e.currentTarget, giftForm) }, "Gift"),
      h("button", { type: "button", class: "button", "aria-expanded": "false", "aria-controls": "action-panel", onclick: (e) => toggle(e.currentTarget, subscribeForm) }, "Subscribe"),
    );
  }
  panel.id = "action-panel";
  // What a visitor may report here: the broadcast on air, the channel, its owner's account.
  if (!owner) {
    actions.append(reportButton(() => [
      ...(streamId ? [{ content_type: "stream", content_id: streamId, label: "the live stream" }] : []),
      { content_type: "channel", content_id: channel.id, label: `the channel ${channel.name}` },
      { content_type: "user", content_id: channel.owner.id, label: `the account @${channel.owner.username}` },
    ], { small: false }));
  }

  async function toggle(button, build) {
    const open = button.getAttribute("aria-expanded") === "true";
    for (const b of actions.querySelectorAll("[aria-expanded]")) b.setAttribute("aria-expanded", "false");
    if (open) return replace(panel);
    button.setAttribute("aria-expanded", "true");
    replace(panel, await build());
    panel.querySelector("input, button")?.focus();
  }

  function closePanel() {
    replace(panel);
    for (const b of actions.querySelectorAll("[aria-expanded]")) b.setAttribute("aria-expanded", "false");
  }

  function moneyRefused(errors, error) {
    replace(errors, errorBox(error));
    if (error.code === "INSUFFICIENT_BALANCE") errors.append(h("p", {}, h("a", { href: "/wallet" }, "Buy tokens in your wallet")));
  }

  async function balanceLine() {
    const balance = await get("wallet/balance").catch(() => null);
    return balance ? h("p", { class: "muted" }, `Your balance: ${formatTokens(balance.token_balance)} · `, h("a", { href: "/wallet" }, "Buy tokens")) : null;
  }

  async function tipForm() {
    const tokens = h("input", { type: "number", name: "tokens", min: 1, step: 1, value: 100, required: true, inputmode: "numeric" });
    const message = h("input", { name: "message", maxlength: 500, placeholder: "Say thanks (optional)" });
    const hidden = h("input", { type: "checkbox", name: "private" });
    const errors = h("div");
    const heading = h("h2");
    const offlineNote = h("p", { class: "notice", role: "status" });
    const submit = h("button", { type: "submit", class: "button primary" });
    showTipMode = () => {
      heading.textContent = streamId ? `Tip ${channel.name}` : `Donate to ${channel.name}`;
      offlineNote.textContent = streamId ? "" : "The channel is offline: this is a donation.";
      offlineNote.hidden = Boolean(streamId);
      submit.textContent = streamId ? "Send tip" : "Send donation";
    };
    showTipMode();
    return h(
      "form",
      {
        class: "stack tip-form",
        "aria-label": "Tip",
        onsubmit: async (event) => {
          event.preventDefault();
          replace(errors);
          submit.disabled = true;
          const body = { tokens: Number(tokens.value), message: message.value.trim() || null, is_private: hidden.checked };
          try {
            if (streamId) {
              const tip = await post(`streams/${streamId}/tips`, body, { moves: true });
              toast(`You tipped ${formatTokens(tip.tokens)}. Thank you!`);
            } else {
              const donation = await post("donations", { ...body, channel_id: channel.id }, { moves: true });
              toast(`You donated ${formatTokens(donation.tokens)} to ${channel.name}. Thank you!`);
            }
            closePanel();
          } catch (error) {
            moneyRefused(errors, error);
          } finally {
            submit.disabled = false;
          }
        },
      },
      heading,
      offlineNote,
      await balanceLine(),
      h("div", { class: "presets" }, [10, 50, 100, 500].map((n) =>
        h("button", { type: "button", class: "button small", onclick: () => (tokens.value = n) }, String(n)))),
      field("Tokens", tokens),
      field("Message", message),
      h("label", { class: "check" }, hidden, " Private (only the streamer sees your name and message)"),
      errors,
      submit,
    );
  }

  // Gifts from the catalogue: to the live stream, or to the channel while it is offline.
  async function giftForm() {
    const [catalogue, balance] = await Promise.all([get("gifts", { limit: 100 }).then((page) => page.data), balanceLine()]);
    const quantity = h("input", { type: "number", name: "quantity", min: 1, max: 100, step: 1, value: 1, required: true, inputmode: "numeric" });
    const message = h("input", { name: "message", maxlength: 500, placeholder: "Add a message (optional)" });
    const errors = h("div");
    const submit = h("button", { type: "submit", class: "button primary" }, "Send gift");
    const choices = catalogue.map((gift, i) =>
      h("label", { class: "gift-choice" },
        h("input", { type: "radio", name: "gift", value: gift.slug, checked: i === 0, required: true }),
        h("span", { class: "gift-icon", "aria-hidden": "true" }, GIFT_ICONS[gift.slug] || "🎁"),
        h("span", { class: "gift-name" }, gift.name, h("small", { class: "muted" }, ` ${formatTokens(gift.tokens)}`))));
    const form = h(
      "form",
      {
        class: "stack gift-form",
        "aria-label": "Gift",
        onsubmit: async (event) => {
          event.preventDefault();
          replace(errors);
          const slug = form.querySelector("input[name=gift]:checked")?.value;
          const gift = catalogue.find((g) => g.slug === slug);
          if (!gift) return;
          submit.disabled = true;
          const body = { gift: gift.slug, quantity: Number(quantity.value), message: message.value.trim() || null };
          try {
            const sent = await post("gifts", streamId ? { ...body, stream_id: streamId } : { ...body, channel_id: channel.id }, { moves: true });
            toast(`You sent ${body.quantity > 1 ? `${body.quantity} × ` : ""}${gift.name} (${formatTokens(sent.tokens)}). Thank you!`);
            closePanel();
          } catch (error) {
            moneyRefused(errors, error);
          } finally {
            submit.disabled = false;
          }
        },
      },
      h("h2", {}, `Send ${channel.name} a gift`),
      balance,
      h("fieldset", { class: "gift-choices" }, h("legend", {}, "Gift"), choices),
      field("How many", quantity),
      field("Message", message),
      errors,
      submit,
    );
    return form;
  }

  async function subscribeForm() {
    const [tiers, mine] = await Promise.all([
      get(`channels/${channel.id}/subscription-tiers`).then((page) => page.data),
      get("subscriptions/me", { channel_id: channel.id }).then((page) => page.data, () => []),
    ]);
    const active = mine.find((s) => s.channel_id === channel.id && s.status === "active");
    const errors = h("div");
    const choose = async (tier, button) => {
      replace(errors);
      button.disabled = true;
      try {
        await post("subscriptions", { channel_id: channel.id, tier: tier.level }, { moves: true });
        toast(`Subscribed to ${channel.name} (${tier.name})`);
        replace(panel, h("p", { class: "success" }, `You are subscribed to ${channel.name}. Thank you!`));
      } catch (error) {
        moneyRefused(errors, error);
      } finally {
        button.disabled = false;
      }
    };
    return h(
      "div",
      { class: "stack" },
      h("h2", {}, `Subscribe to ${channel.name}`),
      active
        ? h("p", { class: "success" }, `You are subscribed (${active.auto_renew ? "renews" : "ends"} ${formatDate(active.current_period_end)}).`)
        : null,
      h("p", { class: "muted" }, "Paid monthly from your token wallet; subscribers get a badge in chat."),
      h("div", { class: "tiers" }, tiers.map((tier) => {
        const button = h("button", { type: "button", class: "button" }, `${tier.name}: ${formatTokens(tier.tokens_per_month)} a month`);
        button.addEventListener("click", () => choose(tier, button));
        return button;
      })),
      errors,
    );
  }

  replace(
    main,
    h(
      "div",
      { class: "channel-layout" },
      h(
        "section",
        { class: "channel-main", "aria-labelledby": "channel-name" },
        player.element,
        reactions.element,
        clipBar,
        clipper.editor,
        h(
          "div",
          { class: "channel-info" },
          h("div", { class: "channel-heading" },
            h("h1", { id: "channel-name" }, channel.name),
            h("p", { class: "muted" }, `@${channel.owner.username} · `, followers, " · ", viewers)),
          title,
          category,
          status,
          actions,
          panel,
          polls.element,
          channel.description ? h("p", { class: "channel-description" }, channel.description) : null,
        ),
        supporters.element,
        h("section", { class: "page", "aria-labelledby": "clips-title" }, h("div", { class: "section-head" }, h("h2", { id: "clips-title" }, "Clips"), clipSort), clipList),
        h("section", { class: "page", "aria-labelledby": "vods-title" }, h("h2", { id: "vods-title" }, "Past broadcasts"), vodList),
      ),
      chat.element,
    ),
  );
  loadClips();
  if (streamId) await chat.loadHistory(streamId);
  await polls.load();
  // A stream that has been on air a while has segments already; a new one waits for them.
  if (streamId && Date.now() - new Date(stream.started_at).getTime() > 10_000) startPlayback();

  return () => {
    clearTimeout(vodTimer);
    polls.destroy();
    supporters.destroy();
    player.destroy();
    live.close();
  };
}

function followerText(count) {
  return `${formatNumber(count)} ${count === 1 ? "follower" : "followers"}`;
}
