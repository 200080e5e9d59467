// What the server learnt of the creator's source, shown while it needs their attention: a
// keyframe interval too long for short segments (OBS's default "0 = auto" is 250 frames).
// The page reads it once with the stream key (`stream_health`) and then follows the room's
// `stream:health` events; it goes away when the stream ends.
import { h } from "./dom.js";

export function streamHealthNotice(live, initial) {
  const notice = h("p", { class: "notice", id: "stream-health", role: "status", hidden: true });
  const show = (health) => {
    const message = health?.warning ? health.message : null;
    notice.textContent = message ?? "";
    notice.hidden = !message;
  };
  show(initial);
  live.on("stream:health", show);
  live.on("stream:ended", () => show(null));
  return notice;
}
