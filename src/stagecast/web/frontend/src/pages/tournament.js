// One tournament: its bracket by round, standings, and what the viewer may do (join, leave;
// the organiser starts, decides matches, cancels; players report their match). It follows the
// tournament's room: every `tournament:updated` draws the bracket again.
import { get, post } from "../api.js";
import { currentUser } from "../auth.js";
import { h, replace, formatTokens, formatDate, toast } from "../dom.js";
import { openSocket } from "../realtime.js";

export async function render({ main, params }) {
  const id = params[0];
  let tournament = await get(`tournaments/${encodeURIComponent(id)}`);
  const me = currentUser();
  const live = openSocket();
  const view = h("div");
  document.title = `${tournament.name} · Stagecast`;

  async function act(path, body) {
    try {
      tournament = await post(`tournaments/${tournament.id}/${path}`, body, { moves: true });
      draw();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  function player(p, match) {
    if (!p) return h("span", { class: "bracket-player muted" }, match.status === "bye" ? "bye" : "to be decided");
    const won = match.winner_id === p.user_id;
    return h("span", { class: `bracket-player${won ? " winner" : ""}` }, `${p.seed ? `(${p.seed}) ` : ""}${p.display_name || p.username}`, won ? " ✓" : "");
  }

  function matchActions(match) {
    if (!["ready", "disputed"].includes(match.status) || !me) return null;
    const organiser = me.id === tournament.organiser.id;
    const playing = [match.player1?.user_id, match.player2?.user_id].includes(me.id);
    if (!organiser && !playing) return null;
    return h("div", { class: "match-actions" },
      [match.player1, match.player2].map((p) =>
        h("button", {
          type: "button",
          class: "button small",
          onclick: () => act(`matches/${match.id}/result`, { winner_id: p.user_id }),
        }, `${p.username} won`)));
  }

  function matchCard(match) {
    return h("li", { class: `match match-${match.status}`, dataset: { matchId: match.id } },
      player(match.player1, match),
      player(match.player2, match),
      match.score ? h("span", { class: "muted" }, match.score) : null,
      match.status === "disputed" ? h("span", { class: "muted" }, "the players disagree: the organiser decides") : null,
      match.channel ? h("a", { href: match.channel.url }, `Watch on ${match.channel.name}`) : null,
      matchActions(match));
  }

  function draw() {
    const t = tournament;
    const organiser = me?.id === t.organiser.id;
    const joined = me && t.standings.some((s) => s.user_id === me.id);
    const buttons = [];
    if (t.status === "open" && me && !joined) buttons.push(h("button", { type: "button", class: "button primary", onclick: () => act("join") }, t.entry_fee_tokens ? `Join (${formatTokens(t.entry_fee_tokens)})` : "Join"));
    if (t.status === "open" && joined) buttons.push(h("button", { type: "button", class: "button", onclick: () => act("leave") }, "Leave"));
    if (t.status === "open" && organiser) buttons.push(h("button", { type: "button", class: "button", onclick: () => act("start", { seeding: "random" }) }, "Start"));
    if (["open", "running"].includes(t.status) && organiser) buttons.push(h("button", { type: "button", class: "button ghost", onclick: () => act("cancel") }, "Cancel tournament"));
    const winner = t.standings.find((s) => s.user_id === t.winner_id);
    replace(
      view,
      h("section", { class: "page", "aria-labelledby": "tournament-title" },
        h("h1", { id: "tournament-title" }, t.name),
        h("p", { class: "muted" },
          `${t.category} · ${t.format.replace("_", " ")} · organised by @${t.organiser.username} · starts ${formatDate(t.starts_at)}`),
        h("p", { class: "tournament-status", role: "status" },
          `Status: ${t.status}`, ` · ${t.participant_count}/${t.max_participants} players`,
          ` · prize pool ${formatTokens(t.prize_pool_tokens)}`,
          winner ? ` · winner: ${winner.username}` : ""),
        t.rules ? h("p", {}, t.rules) : null,
        h("div", { class: "channel-actions" }, buttons),
        t.rounds.length
          ? h("div", { class: "bracket" },
              t.rounds.map((round) =>
                h("section", { class: "bracket-round", "aria-label": round.name },
                  h("h2", {}, round.name),
                  h("ol", { class: "matches" }, round.matches.map(matchCard)))))
          : h("p", { class: "muted" }, "The bracket is drawn when the organiser starts the tournament."),
        h("section", { "aria-labelledby": "standings-title" },
          h("h2", { id: "standings-title" }, "Standings"),
          h("ol", { class: "standings" },
            t.standings.map((s) =>
              h("li", {}, `${s.username} · ${s.wins} won, ${s.losses} lost`,
                s.placement ? ` · place ${s.placement}` : "",
                s.prize_tokens ? ` · ${formatTokens(s.prize_tokens)}` : ""))))),
    );
  }

  live.socket.on("connect", async () => {
    try {
      const answer = await live.call("tournament:join", { tournamentId: tournament.id });
      tournament = answer.tournament;
      draw();
    } catch (error) {
      toast(error.message, "error");
    }
  });
  live.on("tournament:updated", (payload) => {
    tournament = payload;
    draw();
  });

  draw();
  replace(main, view);
  return () => live.close();
}
