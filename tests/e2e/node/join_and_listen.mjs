// Connects with the official socket.io-client v4, joins a stream, prints what it receives as
// JSON lines, and exits after the first chat message (or an error).
// Arguments: url, token ("" for none), stream id, and optionally more handshake auth as JSON.
import { io } from "socket.io-client";

const [url, token, streamId, extraAuth] = process.argv.slice(2);
const auth = { ...(token ? { token } : {}), ...JSON.parse(extraAuth || "{}") };
const socket = io(url, {
  auth: Object.keys(auth).length ? auth : undefined,
  transports: ["websocket", "polling"],
});
const print = (kind, data) => console.log(JSON.stringify({ kind, data }));
const timer = setTimeout(() => { print("timeout", null); process.exit(2); }, 15000);

socket.on("connect_error", (err) => {
  print("connect_error", { message: err.message, data: err.data ?? null });
  process.exit(3);
});
socket.on("connect", async () => {
  const joined = await socket.emitWithAck("stream:join", { streamId });
  print("joined", joined);
  const refused = await socket.emitWithAck("chat:send", { message: "from node" });
  print("send_ack", refused);
});
socket.on("chat:message", (event) => {
  print("chat:message", event);
  clearTimeout(timer);
  socket.disconnect();
  process.exit(0);
});
