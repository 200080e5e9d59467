// One Socket.IO connection per page, signed in when the user is. Events arrive as
// {type, payload, timestamp} envelopes; `on` hands the payload to the listener.
import { io } from "socket.io-client";
import { accessToken, refresh } from "./auth.js";

export function openSocket() {
  let sent = null; // the token of the last handshake
  const socket = io({
    path: "/socket.io",
    transports: ["websocket", "polling"],
    // Read again on every (re)connect, so a reconnect uses the current token.
    auth: (send) =>
      accessToken().then((token) => {
        sent = token;
        send(token ? { token } : {});
      }),
  });
  socket.on("connect_error", async (error) => {
    // A token that expired between two reconnects, or that a rotated signing key no longer
    // verifies: refresh it, whatever its expiry says, and try again (as an anonymous viewer
    // when the session is over).
    if (error?.data?.code !== "INVALID_TOKEN") return;
    await refresh(sent);
    socket.connect();
  });
  return {
    socket,
    on(event, listener) {
      socket.on(event, (envelope) => listener(envelope?.payload ?? envelope, envelope));
    },
    // An acked call: resolves with the ack, rejects with the problem's message.
    async call(event, data, timeout = 10_000) {
      const answer = await socket.timeout(timeout).emitWithAck(event, data);
      if (answer && answer.ok === false) {
        const error = new Error(answer.error?.detail || answer.error?.title || "Refused");
        error.problem = answer.error;
        error.code = answer.error?.code;
        throw error;
      }
      return answer;
    },
    close() {
      socket.removeAllListeners();
      socket.disconnect();
    },
  };
}
