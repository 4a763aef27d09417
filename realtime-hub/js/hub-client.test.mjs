// Drives the hub with the official socket.io-client, as the browser app will.
// Usage: node hub-client.test.mjs <hub url> <websocket|polling|upgrade> <post id> <initial count> <final count>
// `upgrade` starts on long-polling and upgrades to WebSocket, as a browser does by default.
// Prints READY once subscribed (the Rust test then publishes likes), then one JSON result line.
import { io } from "socket.io-client";

const [url, transport, post, initial, final] = process.argv.slice(2);
const fail = (msg) => {
  console.error(msg);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 15000).unref();

const transports = transport === "upgrade" ? ["polling", "websocket"] : [transport];
const socket = io(url, { transports, reconnection: false });
socket.on("connect_error", (e) => fail(`connect_error: ${e.message}`));

const updates = [];
socket.on("likes:updated", (u) => {
  if (u.post_id !== post) fail(`update for a post not subscribed: ${JSON.stringify(u)}`);
  updates.push(u);
  if (u.likes === Number(final)) {
    // Linger one window so any extra emit after the final count would be seen.
    setTimeout(() => {
      console.log(JSON.stringify({ transport: socket.io.engine.transport.name, updates }));
      socket.close();
      process.exit(0);
    }, 300);
  }
});

// Emitted before the connection is up: the client buffers it and flushes on connect.
const ack = await socket.timeout(5000).emitWithAck("subscribe", { posts: [post] });
if (ack?.counts?.[post] !== Number(initial)) fail(`unexpected ack ${JSON.stringify(ack)}`);
const bad = await socket.timeout(5000).emitWithAck("subscribe", "nope");
if (bad?.error?.title !== "Malformed payload") fail(`unexpected error ack ${JSON.stringify(bad)}`);
if (!socket.connected) fail("socket dropped after a bad payload");
if (transport === "upgrade" && socket.io.engine.transport.name !== "websocket") {
  await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
}
console.log("READY");
