// Minimal Socket.IO v4 broadcast server, the reference for bench/chat_fanout.py.
//
// Usage: node server.mjs <port>
//   "join" (any payload, acked)  -> the socket enters the one room
//   "send" (payload, acked)      -> "message" with the same payload to everyone in the room
// Nothing else: no auth, no storage, no validation. It shows what the transport alone costs.
import { createServer } from "node:http";
import { Server } from "socket.io";

const ROOM = "room";
const port = Number.parseInt(process.argv[2] ?? "3000", 10);

const httpServer = createServer((req, res) => {
  res.writeHead(req.url === "/health" ? 200 : 404, { "content-type": "text/plain" });
  res.end(req.url === "/health" ? "ok" : "not found");
});
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });

io.on("connection", (socket) => {
  socket.on("join", (_payload, ack) => {
    socket.join(ROOM);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("send", (payload, ack) => {
    io.to(ROOM).emit("message", payload);
    if (typeof ack === "function") ack({ ok: true });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`node reference listening on 127.0.0.1:${port}`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
