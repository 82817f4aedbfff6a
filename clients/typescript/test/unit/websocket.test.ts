/**
 * The WebSocket transport over real sockets, against a minimal in-process server written with
 * `ws` (not the fixture): subprotocol negotiation, text and binary frames, a link killed (1006).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import WebSocket, { WebSocketServer } from "ws";
import { decodeMsgpack, encodeMsgpack, SwitchboardClient } from "../../src/index.js";

describe("WebSocketTransport with ws", () => {
  let server: WebSocketServer;
  let url: string;
  const sockets: WebSocket[] = [];
  const protocols: string[] = [];

  before(async () => {
    server = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/ws", handleProtocols: (offered) => [...offered][0] ?? false });
    await new Promise((r) => server.once("listening", r));
    url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/ws`;
    server.on("connection", (ws) => {
      sockets.push(ws);
      protocols.push(ws.protocol);
      const binary = ws.protocol === "switchboard.v1.msgpack";
      const send = (m: unknown[]) => (binary ? ws.send(encodeMsgpack(m)) : ws.send(JSON.stringify(m)));
      ws.on("message", (data, isBinary) => {
        const [type, payload, id] = (isBinary ? decodeMsgpack(new Uint8Array(data as Buffer)) : JSON.parse(String(data))) as [string, unknown, number];
        if (type === "~hello") send(["~ok", { conn: `c${sockets.length}`, user: "ann", ns: "main", data: { binary }, heartbeat: 0 }, id]);
        else if (type === "echo") send(["~ok", payload, id]);
        else if (id !== undefined) send(["~err", { code: "NOT_FOUND", message: "no" }, id]);
      });
    });
  });

  after(async () => {
    for (const s of sockets) s.terminate();
    await new Promise((r) => server.close(r));
  });

  it("speaks JSON over text frames and offers its subprotocol", async () => {
    const c = new SwitchboardClient({ url, WebSocket, identity: { user: "ann" } });
    const w = await c.connect();
    assert.deepEqual(w.data, { binary: false });
    assert.equal(protocols.at(-1), "switchboard.v1.json");
    assert.deepEqual(await c.call("echo", { x: [1, "é"] }), { x: [1, "é"] });
    await c.close();
  });

  it("speaks MessagePack over binary frames", async () => {
    const c = new SwitchboardClient({ url, WebSocket, codec: "msgpack", identity: { user: "ann" } });
    const w = await c.connect();
    assert.deepEqual(w.data, { binary: true });
    assert.equal(protocols.at(-1), "switchboard.v1.msgpack");
    assert.deepEqual(await c.call("echo", { big: 2 ** 40, neg: -5, f: 0.5 }), { big: 2 ** 40, neg: -5, f: 0.5 });
    await c.close();
  });

  it("notices a killed TCP link (1006) and reconnects", async () => {
    const c = new SwitchboardClient({ url, WebSocket, identity: { user: "ann" }, reconnect: { initialDelayMs: 20 } });
    await c.connect();
    const closed = new Promise<number>((r) => c.once("close", (i) => r(i.code)));
    const ready = new Promise((r) => c.once("ready", r));
    (sockets.at(-1) as WebSocket).terminate();
    assert.equal(await closed, 1006);
    await ready;
    assert.equal(await c.call("echo", 1), 1);
    await c.close();
    assert.equal(c.state, "closed");
  });

  it("fails clearly without a WebSocket implementation", () => {
    assert.throws(() => new SwitchboardClient({ url }), /no WebSocket available/);
  });
});
