/** Connection lifecycle: hello, challenge, refusals, reconnect policy and backoff, jump, heartbeat. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SwitchboardError, type ClientState, type CloseInfo } from "../../src/index.js";
import { flush } from "../support/fake-clock.js";
import { fakeClient, readyClient } from "../support/setup.js";

function states(client: { on(e: "state", l: (s: { state: ClientState }) => void): unknown }): ClientState[] {
  const seen: ClientState[] = [];
  client.on("state", ({ state }) => seen.push(state));
  return seen;
}

describe("connecting", () => {
  it("sends ~hello with namespace, identity and meta, then becomes ready", async () => {
    const { client, transport } = fakeClient({ namespace: "admin", meta: { device: "test" } });
    const seen = states(client);
    const welcome = client.connect();
    assert.equal(client.state, "connecting");
    await flush();
    const socket = transport.last;
    assert.deepEqual(socket.protocols, ["switchboard.v1.json"]);
    assert.equal(socket.sent.length, 0, "nothing before the socket opens");
    socket.open();
    assert.deepEqual(socket.request("~hello").payload, {
      ns: "admin",
      identity: { user: "ann", password: "pw-ann" },
      meta: { device: "test" },
    });
    socket.ok("~hello", { conn: "c9", user: "ann", ns: "admin", data: { hello: "ann" }, heartbeat: 0 });
    const w = await welcome;
    assert.equal(w.conn, "c9");
    assert.deepEqual(w.data, { hello: "ann" });
    assert.equal(client.state, "ready");
    assert.deepEqual(seen, ["connecting", "ready"]);
  });

  it("calls the identity provider again at every reconnect", async () => {
    let n = 0;
    const { client, transport, clock } = fakeClient({ identity: async () => ({ token: `t${++n}` }) });
    void client.connect();
    await flush();
    transport.last.accept();
    await flush();
    transport.last.drop(4003, "credentials expired");
    await clock.advance(1000);
    transport.last.open();
    assert.deepEqual(transport.last.request("~hello").payload, { identity: { token: "t2" } });
    assert.equal(transport.sockets.length, 2);
  });

  it("answers ~challenge through the handler", async () => {
    const { client, transport } = fakeClient({ onChallenge: async (quest) => `answer-to-${(quest as { nonce: string }).nonce}` });
    const welcome = client.connect();
    await flush();
    const socket = transport.last;
    socket.open();
    socket.push("~challenge", { nonce: "ab12" }, 1);
    await flush();
    assert.deepEqual(socket.ofType("~ok"), [{ type: "~ok", payload: "answer-to-ab12", id: 1 }]);
    socket.ok("~hello", { conn: "c1", user: "ann", ns: "main", data: null, heartbeat: 0 });
    await welcome;
  });

  it("gives up a challenge it cannot answer with ~err", async () => {
    const { client, transport } = fakeClient();
    void client.connect().catch(() => undefined);
    await flush();
    transport.last.open();
    transport.last.push("~challenge", { nonce: "00" }, 4);
    await flush();
    const [reply] = transport.last.ofType("~err");
    assert.equal(reply?.id, 4);
    assert.equal((reply?.payload as { code: string }).code, "NOT_AUTHORIZED");
  });

  it("rejects connect() with NOT_AUTHORIZED and stops", async () => {
    const { client, transport, clock } = fakeClient();
    const seen = states(client);
    const welcome = client.connect();
    await flush();
    transport.last.open();
    transport.last.err("~hello", "NOT_AUTHORIZED", "bad password");
    transport.last.drop(4500, "not authorized");
    await assert.rejects(welcome, (e: unknown) => e instanceof SwitchboardError && e.code === "NOT_AUTHORIZED" && e.message === "bad password");
    await clock.advance(60_000);
    assert.equal(transport.sockets.length, 1);
    assert.deepEqual(seen, ["connecting", "closed"]);
    assert.equal(client.closeInfo?.willReconnect, false);
  });

  it("stops on an unknown namespace (NOT_FOUND) and closes the anonymous socket", async () => {
    const { client, transport } = fakeClient({ namespace: "nope" });
    const welcome = client.connect();
    await flush();
    transport.last.open();
    transport.last.err("~hello", "NOT_FOUND", "no such namespace");
    await assert.rejects(welcome, { code: "NOT_FOUND" });
    assert.equal(transport.last.closedWith?.code, 1000);
    assert.equal(client.state, "closed");
  });

  it("retries when the socket does not identify within connectTimeoutMs", async () => {
    const { client, transport, clock } = fakeClient({ connectTimeoutMs: 500 });
    void client.connect();
    await flush();
    await clock.advance(499);
    assert.equal(client.state, "connecting");
    await clock.advance(1);
    assert.equal(client.state, "reconnecting");
    assert.equal(client.closeInfo?.code, 1006);
    await clock.advance(50); // backoff: 0.5 * 100
    assert.equal(transport.sockets.length, 2);
  });
});

describe("reconnect policy", () => {
  for (const code of [1001, 1006, 4000, 4001, 4002, 4003]) {
    it(`reconnects after close code ${code}`, async () => {
      const { client, transport, clock } = await readyClient();
      const closes: CloseInfo[] = [];
      client.on("close", (c) => closes.push(c));
      transport.last.drop(code, "bye");
      assert.equal(client.state, "reconnecting");
      assert.deepEqual(closes, [{ code, reason: "bye", byUser: false, willReconnect: true }]);
      await clock.advance(100);
      assert.equal(transport.sockets.length, 2);
      transport.last.accept();
      await flush();
      assert.equal(client.state, "ready");
    });
  }

  for (const code of [4500, 4501, 4502, 4503, 4504, 1000]) {
    it(`stops after close code ${code} and says why`, async () => {
      const { client, transport, clock } = await readyClient();
      const pending = client.call("sleep", { ms: 10_000 });
      transport.last.drop(code, "server says no");
      assert.equal(client.state, "closed");
      assert.equal(client.closeInfo?.code, code);
      assert.equal(client.closeInfo?.willReconnect, false);
      await assert.rejects(pending, { code: "DISCONNECTED" });
      await clock.advance(60_000);
      assert.equal(transport.sockets.length, 1);
      await assert.rejects(client.call("echo"), { code: "DISCONNECTED" });
    });
  }

  it("does not reconnect after close() by the user", async () => {
    const { client, transport, clock } = await readyClient();
    const seen = states(client);
    await client.close();
    assert.equal(transport.last.closedWith?.code, 1000);
    assert.equal(client.closeInfo?.byUser, true);
    await clock.advance(60_000);
    assert.equal(transport.sockets.length, 1);
    assert.deepEqual(seen, ["closed"]);
  });

  it("backs off exponentially with full jitter up to the cap, and resets once ready", async () => {
    const { client, transport, clock } = fakeClient({ reconnect: { initialDelayMs: 100, maxDelayMs: 400, random: () => 0.999 } });
    const delays: number[] = [];
    client.on("reconnecting", (r) => delays.push(r.delayMs));
    void client.connect();
    await flush();
    for (let i = 0; i < 5; i++) {
      transport.last.drop(1006);
      const expected = delays.at(-1) ?? 0;
      await clock.advance(expected - 1);
      assert.equal(transport.sockets.length, i + 1, `attempt ${i} waits its delay`);
      await clock.advance(1);
      assert.equal(transport.sockets.length, i + 2);
    }
    assert.deepEqual(delays, [99, 199, 399, 399, 399]);
    transport.last.accept();
    await flush();
    transport.last.drop(1006);
    assert.equal(delays.at(-1), 99, "backoff restarts after a successful connection");
  });

  it("gives up after maxAttempts", async () => {
    const { client, transport, clock } = fakeClient({ reconnect: { initialDelayMs: 10, maxAttempts: 2, random: () => 0 } });
    const welcome = client.connect();
    await flush();
    transport.last.drop(1006);
    await clock.advance(0);
    transport.last.drop(1006);
    await clock.advance(0);
    transport.last.drop(1006);
    await assert.rejects(welcome, { code: "DISCONNECTED" });
    assert.equal(client.state, "closed");
    assert.equal(transport.sockets.length, 3);
  });

  it("never reconnects with reconnect: false", async () => {
    const { client, transport } = await readyClient({ reconnect: false });
    transport.last.drop(1006);
    assert.equal(client.state, "closed");
  });

  it("honours ~bye.jump: reconnects at once to the new URL", async () => {
    const { client, transport, clock } = await readyClient();
    const byes: unknown[] = [];
    client.on("bye", (b) => byes.push(b));
    transport.last.push("~bye", { code: 4000, reason: "moving", jump: "ws://other/ws" });
    transport.last.drop(4000, "moving");
    assert.equal(client.closeInfo?.bye?.jump, "ws://other/ws");
    assert.equal(byes.length, 1);
    await clock.advance(0);
    assert.equal(transport.last.url, "ws://other/ws");
    assert.equal(client.url, "ws://other/ws");
  });

  it("reports the whole state sequence across a reconnect", async () => {
    const { client, transport, clock } = fakeClient();
    const seen = states(client);
    void client.connect();
    await flush();
    transport.last.accept();
    await flush();
    transport.last.drop(1006);
    await clock.advance(100);
    transport.last.accept();
    await flush();
    await client.close();
    assert.deepEqual(seen, ["connecting", "ready", "reconnecting", "ready", "closed"]);
  });

  it("can connect again after being closed", async () => {
    const { client, transport } = await readyClient();
    await client.close();
    const again = client.connect();
    await flush();
    transport.last.accept();
    await again;
    assert.equal(client.state, "ready");
  });
});

describe("heartbeat", () => {
  it("pings every interval and drops a link whose ping goes unanswered", async () => {
    const { client, transport, clock } = fakeClient({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 300 });
    void client.connect();
    await flush();
    transport.last.accept();
    await flush();
    await clock.advance(1000);
    assert.equal(transport.last.ofType("~ping").length, 1);
    transport.last.ok("~ping");
    await clock.advance(1000);
    assert.equal(transport.last.ofType("~ping").length, 2);
    assert.equal(client.state, "ready");
    await clock.advance(300); // unanswered
    assert.equal(client.state, "reconnecting");
    assert.match(client.closeInfo?.reason ?? "", /~ping/);
  });

  it("uses the server's heartbeat from the welcome by default", async () => {
    const { client, transport, clock } = fakeClient();
    void client.connect();
    await flush();
    transport.last.open();
    transport.last.ok("~hello", { conn: "c", user: "ann", ns: "main", data: null, heartbeat: 5000 });
    await flush();
    await clock.advance(4999);
    assert.equal(transport.last.ofType("~ping").length, 0);
    await clock.advance(1);
    assert.equal(transport.last.ofType("~ping").length, 1);
  });

  it("answers the server's ~ping", async () => {
    const { transport } = await readyClient();
    transport.last.push("~ping", null, 77);
    assert.deepEqual(transport.last.ofType("~ok").at(-1), { type: "~ok", payload: null, id: 77 });
  });
});

describe("failing fast (protocol §8)", () => {
  it("a refused ~hello (NOT_AUTHORIZED, then 4500) is the error everywhere, kept in lastError, and never retried", async () => {
    const { client, transport, clock } = fakeClient();
    const events: { state: ClientState; error: string | undefined }[] = [];
    client.on("state", ({ state, error }) => events.push({ state, error: error?.code }));
    const buffered = client.call("echo", 1); // waits in the offline buffer for the welcome
    const subscribing = client.subscribe("chat/a");
    const welcome = client.connect();
    await flush();
    transport.last.open();
    transport.last.err("~hello", "NOT_AUTHORIZED", "bad password");
    transport.last.drop(4500, "not authorized");
    await assert.rejects(welcome, { code: "NOT_AUTHORIZED", message: "bad password" });
    await assert.rejects(buffered, { code: "NOT_AUTHORIZED" }, "a request that never went out fails with the cause");
    await assert.rejects(subscribing, { code: "NOT_AUTHORIZED" });
    assert.equal(client.lastError?.code, "NOT_AUTHORIZED");
    assert.equal(client.lastError?.message, "bad password");
    assert.deepEqual(events, [
      { state: "connecting", error: undefined },
      { state: "closed", error: "NOT_AUTHORIZED" },
    ]);
    await clock.advance(60_000);
    assert.equal(transport.sockets.length, 1);
  });

  it("lastError says why the client is reconnecting, and clears once ready", async () => {
    const { client, transport, clock } = await readyClient();
    assert.equal(client.lastError?.code, undefined);
    transport.last.drop(1006, "link lost");
    assert.equal(client.lastError?.code, "DISCONNECTED");
    assert.deepEqual(client.lastError?.data, { code: 1006, reason: "link lost" });
    await clock.advance(100);
    transport.last.accept();
    await flush();
    assert.equal(client.state, "ready");
    assert.equal(client.lastError, undefined);
  });

  it("close() by the application leaves no lastError", async () => {
    const { client, transport } = await readyClient();
    transport.last.drop(1006);
    await client.close();
    assert.equal(client.lastError, undefined);
  });

  it("a 4500 close without a refusal is NOT_AUTHORIZED too", async () => {
    const { client, transport } = await readyClient();
    transport.last.drop(4500, "credentials revoked");
    assert.equal(client.state, "closed");
    assert.equal(client.lastError?.code, "NOT_AUTHORIZED");
    assert.match(client.lastError?.message ?? "", /credentials revoked/);
  });

  for (const code of [4500, 4501, 4503, 4599, 4999]) {
    it(`close code ${code} never reconnects, whatever shouldReconnect or the refusal say`, async () => {
      const { client, transport, clock } = fakeClient({ reconnect: { shouldReconnect: () => true, initialDelayMs: 10 } });
      const welcome = client.connect();
      await flush();
      transport.last.open();
      transport.last.err("~hello", "UNAVAILABLE", "identity service down"); // a refusal worth retrying…
      transport.last.drop(code, "final"); // …but the close code says no
      await assert.rejects(welcome);
      assert.equal(client.state, "closed");
      assert.equal(client.closeInfo?.willReconnect, false);
      await clock.advance(60_000);
      assert.equal(transport.sockets.length, 1);
    });
  }

  it("shouldReconnect still decides for codes outside 4500–4999", async () => {
    const { client, transport } = await readyClient({ reconnect: { shouldReconnect: (code) => code !== 4002 } });
    transport.last.drop(4002, "slow consumer");
    assert.equal(client.state, "closed");
    assert.equal(client.lastError?.code, "DISCONNECTED");
  });

  it("an URL the transport cannot open fails with the transport's error, kept in lastError", async () => {
    const transport = {
      connect(): never {
        throw new SwitchboardError("BAD_REQUEST", "unsupported URL");
      },
    };
    const { client } = fakeClient({ transport });
    await assert.rejects(client.connect(), { code: "BAD_REQUEST", message: "unsupported URL" });
    assert.equal(client.lastError?.code, "BAD_REQUEST");
    assert.equal(client.state, "closed");
  });
});
