/** Requests, events, the server's requests, acknowledged deliveries, the offline buffer. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SwitchboardError } from "../../src/index.js";
import { flush } from "../support/fake-clock.js";
import { fakeClient, readyClient } from "../support/setup.js";

describe("call()", () => {
  it("resolves with the typed result", async () => {
    const { client, transport } = await readyClient();
    const sum = client.call<number>("add", { a: 1, b: 2 });
    const sent = transport.last.request("add");
    assert.deepEqual(sent.payload, { a: 1, b: 2 });
    transport.last.push("~ok", 3, sent.id);
    const n: number = await sum;
    assert.equal(n, 3);
  });

  it("rejects with the server's code, message and data", async () => {
    const { client, transport } = await readyClient();
    const p = client.call("fail");
    transport.last.err("fail", "TEAPOT", "I'm a teapot", { short: true });
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof SwitchboardError);
      assert.equal(e.code, "TEAPOT");
      assert.equal(e.message, "I'm a teapot");
      assert.deepEqual(e.data, { short: true });
      return true;
    });
  });

  it("rejects with TIMEOUT and ignores the late reply", async () => {
    const { client, transport, clock } = await readyClient();
    const errors: unknown[] = [];
    client.on("error", (e) => errors.push(e));
    const p = client.call("sleep", { ms: 100 }, { timeoutMs: 50 });
    const id = transport.last.request("sleep").id;
    const rejected = assert.rejects(p, { code: "TIMEOUT" });
    await clock.advance(50);
    await rejected;
    transport.last.push("~ok", null, id);
    assert.deepEqual(errors, []);
  });

  it("rejects with DISCONNECTED when the link drops while waiting", async () => {
    const { client, transport } = await readyClient();
    const p = client.call("sleep", { ms: 1000 });
    transport.last.drop(1006);
    await assert.rejects(p, { code: "DISCONNECTED" });
    assert.equal(client.state, "reconnecting");
  });

  it("can be aborted", async () => {
    const { client } = await readyClient();
    const ac = new AbortController();
    const p = client.call("sleep", null, { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, { code: "ABORTED" });
  });
});

describe("offline buffer", () => {
  it("holds requests and events until ready, then sends them in order", async () => {
    const { client, transport, clock } = await readyClient();
    transport.last.drop(1006);
    const p = client.call<string>("echo", "later", { timeoutMs: 5000 });
    client.send("note", { n: 1 });
    assert.equal(client.buffered, 2);
    await clock.advance(100);
    transport.last.accept();
    await flush();
    assert.deepEqual(
      transport.last.sent.map((m) => m.type),
      ["~hello", "echo", "note"],
    );
    transport.last.ok("echo", "later");
    assert.equal(await p, "later");
    assert.equal(client.buffered, 0);
  });

  it("keeps each request's timeout while it waits", async () => {
    const { client, transport, clock } = await readyClient();
    transport.last.drop(1006);
    const p = client.call("echo", 1, { timeoutMs: 80 });
    const rejected = assert.rejects(p, { code: "TIMEOUT" });
    await clock.advance(80);
    await rejected;
    assert.equal(client.buffered, 0, "a timed-out request leaves the buffer");
    await clock.advance(100);
    transport.last.accept();
    await flush();
    assert.equal(transport.last.ofType("echo").length, 0);
  });

  it("is bounded: beyond its size, sends fail with LIMIT", async () => {
    const { client } = fakeClient({ offlineBufferSize: 2 });
    void client.call("a").catch(() => undefined);
    client.send("b");
    await assert.rejects(client.call("c"), { code: "LIMIT" });
    assert.throws(() => client.send("d"), (e: unknown) => e instanceof SwitchboardError && e.code === "LIMIT");
  });

  it("fails what it holds with DISCONNECTED when the client closes", async () => {
    const { client, transport } = await readyClient();
    transport.last.drop(1006);
    const p = client.call("echo");
    await client.close();
    await assert.rejects(p, { code: "DISCONNECTED" });
    assert.equal(client.buffered, 0);
  });
});

describe("from the server", () => {
  it("dispatches events to their handlers", async () => {
    const { client, transport } = await readyClient();
    const got: unknown[] = [];
    const off = client.onEvent<{ n: number }>("news", (p, ctx) => got.push([p.n, ctx.type]));
    transport.last.push("news", { n: 1 });
    off();
    transport.last.push("news", { n: 2 });
    assert.deepEqual(got, [[1, "news"]]);
  });

  it("answers requests with the handler's result or error", async () => {
    const { client, transport } = await readyClient();
    client.handle<{ q: string }, string>("question", async (p) => `answer to ${p.q}`);
    client.handle("refuse", () => {
      throw new SwitchboardError("NOPE", "not today", { retry: false });
    });
    client.handle("crash", () => {
      throw new Error("secret internal detail");
    });
    transport.last.push("question", { q: "life" }, 10);
    transport.last.push("refuse", null, 11);
    transport.last.push("crash", null, 12);
    await flush();
    const replies = transport.last.sent.filter((m) => m.id !== undefined && m.id >= 10).sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    assert.deepEqual(replies, [
      { type: "~ok", payload: "answer to life", id: 10 },
      { type: "~err", payload: { code: "NOPE", message: "not today", data: { retry: false } }, id: 11 },
      { type: "~err", payload: { code: "FAILED", message: "the client's handler failed" }, id: 12 },
    ]);
  });

  it("answers an unknown request with NOT_FOUND", async () => {
    const { transport } = await readyClient();
    transport.last.push("mystery", null, 5);
    transport.last.push("~future", null, 6);
    await flush();
    const errs = transport.last.ofType("~err");
    assert.deepEqual(errs.map((m) => [(m.payload as { code: string }).code, m.id]), [["NOT_FOUND", 5], ["NOT_FOUND", 6]]);
  });

  it("acknowledges an acknowledged delivery and drops resends by id", async () => {
    const { client, transport } = await readyClient();
    const got: unknown[] = [];
    client.onEvent("alert", (p) => got.push(p));
    transport.last.push("alert", { level: 1 }, 40);
    transport.last.push("alert", { level: 1 }, 40); // resend
    transport.last.push("alert", { level: 2 }, 41);
    assert.deepEqual(got, [{ level: 1 }, { level: 2 }]);
    assert.deepEqual(transport.last.ofType("~ok"), [
      { type: "~ok", payload: null, id: 40 },
      { type: "~ok", payload: null, id: 40 },
      { type: "~ok", payload: null, id: 41 },
    ]);
  });

  it("reports ~err pushes and undecodable frames as errors", async () => {
    const { client, transport } = await readyClient();
    const errors: SwitchboardError[] = [];
    client.on("error", (e) => errors.push(e));
    transport.last.push("~err", { code: "NOT_FOUND", message: "no handler", data: { type: "oops" } });
    transport.last.pushRaw("{not json");
    assert.deepEqual(errors.map((e) => e.code), ["NOT_FOUND", "PROTOCOL"]);
    assert.equal(client.state, "ready");
  });

  it("delivers direct messages", async () => {
    const { client, transport } = await readyClient();
    const dms: unknown[] = [];
    client.onDm((dm) => dms.push(dm));
    transport.last.push("~dm", { from: { conn: "c2", user: "bob", alias: "bob" }, data: "hi" });
    assert.deepEqual(dms, [{ from: { conn: "c2", user: "bob", alias: "bob" }, data: "hi" }]);
  });
});

describe("helpers", () => {
  it("send the reserved requests with the protocol's payloads", async () => {
    const { client, transport } = await readyClient();
    void client.publish("chat/r", { text: "x" }, { event: "said", echo: true });
    void client.setStatus({ alias: "annie", available: false });
    void client.dm({ alias: "bob" }, "hello");
    void client.who();
    void client.who("chat/r");
    void client.refresh({ token: "new" });
    await flush();
    assert.deepEqual(
      transport.last.sent.slice(1).map((m) => [m.type, m.payload]),
      [
        ["~pub", { topic: "chat/r", data: { text: "x" }, event: "said", echo: true }],
        ["~status", { alias: "annie", available: false }],
        ["~dm", { to: { alias: "bob" }, data: "hello" }],
        ["~who", {}],
        ["~who", { topic: "chat/r" }],
        ["~refresh", { identity: { token: "new" } }],
      ],
    );
  });
});
