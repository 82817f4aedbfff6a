/**
 * Runs in a child process with Node's built-in WebSocket (`node --experimental-websocket` on
 * Node 20/21, the default from Node 22): connects to the URL given as argument, where nobody
 * listens, and prints what the client reports as JSON lines. Timers run on a fake clock, so the
 * 10 s connect timeout can never be what ends an attempt: only the socket's own events can.
 */
import { SwitchboardClient, type WebSocketConstructor } from "../../src/index.js";
import { FakeClock } from "./fake-clock.js";

const url = process.argv[2] ?? "";
const builtin = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
if (builtin === undefined) {
  print({ event: "no-websocket" });
  process.exit(3);
}

const clock = new FakeClock();
const client = new SwitchboardClient({
  url,
  clock,
  WebSocket: builtin,
  identity: { user: "ann", password: "pw-ann" },
  reconnect: { initialDelayMs: 100, random: () => 0.5, maxAttempts: 1 },
});
client.on("close", (c) => print({ event: "close", code: c.code, reason: c.reason, willReconnect: c.willReconnect }));
client.on("reconnecting", (r) => {
  print({ event: "reconnecting", attempt: r.attempt, delayMs: r.delayMs });
  void clock.advance(r.delayMs); // the backoff, on the fake clock: the next attempt starts at once
});
client.connect().then(
  () => print({ event: "ready" }),
  (err: { code?: string; message?: string }) => {
    print({ event: "rejected", code: err.code, state: client.state, lastError: client.lastError?.code ?? null });
    process.exit(0);
  },
);
