/**
 * Connection failures over real sockets (an in-process `ws` server or a bare HTTP server, and a
 * port nobody listens on): what fails fast with a cause kept in `lastError`, what retries with
 * backoff. Timers run on a fake clock, so an attempt can only end by the socket's own events,
 * never by the 10 s connect timeout, and a retry happens only when the test advances the clock.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket, { WebSocketServer } from "ws";
import { SwitchboardClient, SwitchboardError, type ClientOptions, type ClientState, type CloseInfo } from "../../src/index.js";
import { FakeClock } from "../support/fake-clock.js";

/** A port that was free a moment ago: bound, then released. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** An HTTP server that answers every WebSocket upgrade with `status`; counts the attempts. */
async function refusingServer(status: number): Promise<{ url: string; upgrades: () => number; close: () => Promise<void> }> {
  let upgrades = 0;
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (_req, socket) => {
    upgrades++;
    socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    upgrades: () => upgrades,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

function client(options: Partial<ClientOptions> & { url: string }) {
  const clock = new FakeClock();
  const c = new SwitchboardClient({
    WebSocket,
    clock,
    identity: { user: "ann", password: "pw-ann" },
    reconnect: { initialDelayMs: 100, random: () => 0.5 },
    ...options,
  });
  const states: ClientState[] = [];
  c.on("state", ({ state }) => states.push(state));
  return { client: c, clock, states };
}

/** The next `close` the client reports (real time: the socket's events). */
const nextClose = (c: SwitchboardClient) => new Promise<CloseInfo>((r) => c.once("close", r));

describe("a connection nobody accepts", () => {
  it("with ws: the attempt fails at once and the client retries with backoff", async () => {
    const { client: c, clock, states } = client({ url: `ws://127.0.0.1:${await freePort()}/ws` });
    const closed = nextClose(c);
    const welcome = c.connect();
    const info = await closed;
    assert.equal(info.code, 1006);
    assert.equal(info.willReconnect, true);
    assert.match(info.reason, /ECONNREFUSED/);
    assert.equal(c.state, "reconnecting");
    assert.equal(c.lastError?.code, "DISCONNECTED");
    const again = nextClose(c);
    await clock.advance(50); // the backoff delay: the second attempt starts
    assert.equal((await again).willReconnect, true);
    assert.deepEqual(states, ["connecting", "reconnecting"]);
    await c.close();
    await assert.rejects(welcome, { code: "DISCONNECTED" });
  });

  it("with a WebSocket that reports only an error (no close event), the attempt still ends at once", async () => {
    // Node 20's built-in WebSocket (undici) fires `error` and never `close` for a refused
    // connection; this stand-in does the same, synchronously after the constructor returns.
    class ErrorOnlyWebSocket {
      readonly protocol = "";
      binaryType = "blob";
      private readonly listeners = new Map<string, ((e: unknown) => void)[]>();
      constructor() {
        queueMicrotask(() => (this.listeners.get("error") ?? []).forEach((l) => l({ type: "error", message: "refused" })));
      }
      addEventListener(type: string, listener: (e: unknown) => void): void {
        this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
      }
      send(): void {}
      close(): void {}
    }
    const { client: c, clock } = client({ url: "ws://127.0.0.1:9/ws", WebSocket: ErrorOnlyWebSocket });
    const welcome = c.connect();
    await clock.advance(0);
    assert.equal(c.state, "reconnecting");
    assert.equal(c.closeInfo?.code, 1006);
    assert.match(c.closeInfo?.reason ?? "", /refused/);
    await c.close();
    await assert.rejects(welcome, { code: "DISCONNECTED" });
  });

  it("with Node's built-in WebSocket: fails and retries without waiting for the connect timeout", async () => {
    const child = fileURLToPath(new URL("../support/builtin-websocket-child.js", import.meta.url));
    const flags = (globalThis as { WebSocket?: unknown }).WebSocket === undefined ? ["--experimental-websocket"] : [];
    const url = `ws://127.0.0.1:${await freePort()}/ws`;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [...flags, "--no-warnings", child, url], { timeout: 30_000 }, (err, out, errOut) =>
        err === null ? resolve(out) : reject(new Error(`${err.message}\nstdout:\n${out}\nstderr:\n${errOut}`)),
      );
    });
    const events = stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      events.map((e) => e["event"]),
      ["close", "reconnecting", "close", "rejected"],
      stdout,
    );
    assert.equal(events[0]?.["code"], 1006);
    assert.equal(events[0]?.["willReconnect"], true);
    assert.equal(events[2]?.["willReconnect"], false, "maxAttempts: 1");
    assert.deepEqual(events[3], { event: "rejected", code: "DISCONNECTED", state: "closed", lastError: "DISCONNECTED" });
  });
});

describe("an HTTP refusal at the upgrade (ws)", () => {
  for (const [status, code] of [
    [401, "NOT_AUTHORIZED"],
    [403, "FORBIDDEN"],
    [404, "NOT_FOUND"],
    [400, "BAD_REQUEST"],
    [410, "UPGRADE_REFUSED"],
  ] as const) {
    it(`${status} fails fast with ${code}, kept in lastError, and never retries`, async () => {
      const server = await refusingServer(status);
      try {
        const { client: c, clock, states } = client({ url: server.url });
        const errors: (SwitchboardError | undefined)[] = [];
        c.on("state", (s) => errors.push(s.error));
        await assert.rejects(c.connect(), (e: unknown) => {
          assert.ok(e instanceof SwitchboardError);
          assert.equal(e.code, code);
          assert.match(e.message, new RegExp(`HTTP ${status}`));
          assert.deepEqual(e.data, { status });
          return true;
        });
        assert.equal(c.state, "closed");
        assert.equal(c.lastError?.code, code);
        assert.equal(c.closeInfo?.willReconnect, false);
        assert.deepEqual(states, ["connecting", "closed"]);
        assert.equal(errors.at(-1)?.code, code, "the state event carries the cause");
        await clock.advance(60_000);
        assert.equal(server.upgrades(), 1);
        await assert.rejects(c.call("echo"), (e: unknown) => e instanceof SwitchboardError && e.code === "DISCONNECTED" && e.message.includes(`HTTP ${status}`));
      } finally {
        await server.close();
      }
    });
  }

  for (const status of [503, 500, 429]) {
    it(`${status} keeps retrying with backoff`, async () => {
      const server = await refusingServer(status);
      try {
        const { client: c, clock } = client({ url: server.url });
        const welcome = c.connect();
        const first = await nextClose(c);
        assert.equal(first.willReconnect, true);
        assert.match(first.reason, new RegExp(`HTTP ${status}`));
        assert.equal(c.state, "reconnecting");
        assert.equal(c.lastError?.code, "DISCONNECTED");
        assert.deepEqual(c.lastError?.data, { code: 1006, reason: first.reason, status });
        const second = nextClose(c);
        await clock.advance(50);
        assert.equal((await second).willReconnect, true);
        assert.equal(server.upgrades(), 2);
        await c.close();
        await assert.rejects(welcome, { code: "DISCONNECTED" });
      } finally {
        await server.close();
      }
    });
  }
});

describe("URLs", () => {
  let server: WebSocketServer;
  let port: number;
  before(async () => {
    server = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/ws" });
    await new Promise((r) => server.once("listening", r));
    port = (server.address() as AddressInfo).port;
    server.on("connection", (ws) =>
      ws.on("message", (data) => {
        const [type, , id] = JSON.parse(String(data)) as [string, unknown, number];
        if (type === "~hello") ws.send(JSON.stringify(["~ok", { conn: "c1", user: "ann", ns: "main", data: null, heartbeat: 0 }, id]));
      }),
    );
  });
  after(async () => {
    for (const ws of server.clients) ws.terminate();
    await new Promise((r) => server.close(r));
  });

  it("maps http: to ws: (and https: to wss:)", async () => {
    const { client: c } = client({ url: `http://127.0.0.1:${port}/ws` });
    assert.equal((await c.connect()).conn, "c1");
    await c.close();
  });

  for (const url of ["ftp://127.0.0.1/ws", "127.0.0.1:8080/ws", "ws//x"]) {
    it(`refuses ${JSON.stringify(url)} at once with BAD_REQUEST, kept in lastError`, async () => {
      const { client: c, clock, states } = client({ url });
      await assert.rejects(c.connect(), (e: unknown) => {
        assert.ok(e instanceof SwitchboardError);
        assert.equal(e.code, "BAD_REQUEST");
        assert.match(e.message, /ws:, wss:, http: or https:/);
        return true;
      });
      assert.equal(c.state, "closed");
      assert.equal(c.lastError?.code, "BAD_REQUEST");
      assert.deepEqual(states, ["connecting", "closed"]);
      await clock.advance(60_000);
      assert.equal(c.state, "closed");
    });
  }
});
