// The official socket.io-client v4 in a live room: joins a stream, reacts and votes with
// emitWithAck, prints the acks and the room's poll and reaction events as JSON lines, and exits
// once its acks are in and it has seen its reaction in a burst and its vote in the tallies.
// Arguments: url, token, stream id, poll id.
import { io } from "socket.io-client";

const [url, token, streamId, pollId] = process.argv.slice(2);
const socket = io(url, { auth: { token }, transports: ["websocket"] });
const print = (kind, data) => console.log(JSON.stringify({ kind, data }));
const timer = setTimeout(() => { print("timeout", null); process.exit(2); }, 15000);
let burst = false;
let tallied = false;
let acked = false;
const done = () => {
  if (!burst || !tallied || !acked) return;
  clearTimeout(timer);
  socket.disconnect();
  process.exit(0);
};

socket.on("connect_error", (err) => {
  print("connect_error", { message: err.message, data: err.data ?? null });
  process.exit(3);
});
socket.on("connect", async () => {
  print("joined", await socket.emitWithAck("stream:join", { streamId }));
  print("reaction_ack", await socket.emitWithAck("reaction:send", { emoji: "🔥" }));
  print("vote_ack", await socket.emitWithAck("poll:vote", { pollId, choice: 1 }));
  print("again_ack", await socket.emitWithAck("poll:vote", { pollId, choice: 0 }));
  acked = true;
  done();
});
socket.on("reaction:sent", (event) => {
  print("reaction:sent", event);
  burst = true;
  done();
});
socket.on("poll:voted", (event) => {
  print("poll:voted", event);
  tallied = event.payload.total_votes >= 1;
  done();
});
