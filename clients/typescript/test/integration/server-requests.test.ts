/** What the server sends: its requests (ask), events (tell, shout), acknowledged deliveries. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SwitchboardError, type SwitchboardClient } from "../../src/index.js";
import { clientFor, eventually, type Fixture, framesOf, sleep, startFixture } from "../support/fixture.js";

describe("server to client (fixture)", { timeout: 120_000 }, () => {
  let fx: Fixture;
  let ann: SwitchboardClient;
  let ann2: SwitchboardClient;
  let bob: SwitchboardClient;
  before(async () => {
    fx = await startFixture();
    ann = clientFor(fx, "ann");
    ann2 = clientFor(fx, "ann");
    bob = clientFor(fx, "bob");
    await Promise.all([ann.connect(), ann2.connect(), bob.connect()]);
  });
  after(async () => {
    await Promise.all([ann, ann2, bob].map((c) => c?.close()));
    await fx?.stop();
  });

  it("ask: the server's request is answered by the handler", async () => {
    ann.handle<{ q: number }, number>("double", ({ q }) => q * 2);
    assert.equal(await ann.call("ask", { type: "double", payload: { q: 21 } }), 42);
  });

  it("ask: an async handler's answer", async () => {
    ann.handle("later", async () => {
      await sleep(50);
      return { done: true };
    });
    assert.deepEqual(await ann.call("ask", { type: "later", payload: null }), { done: true });
  });

  it("ask: the handler's error travels back with its code", async () => {
    ann.handle("refuse", () => {
      throw new SwitchboardError("NOPE", "not today");
    });
    await assert.rejects(ann.call("ask", { type: "refuse", payload: null }), { code: "NOPE", message: "not today" });
  });

  it("ask: a request without a handler is answered NOT_FOUND", async () => {
    await assert.rejects(ann.call("ask", { type: "nobody-handles-this", payload: null }), { code: "NOT_FOUND" });
  });

  it("ask: a handler slower than timeout_ms gives TIMEOUT", async () => {
    ann.handle("slowpoke", () => sleep(1000).then(() => "late"));
    await assert.rejects(ann.call("ask", { type: "slowpoke", payload: null, timeout_ms: 100 }), { code: "TIMEOUT" });
  });

  it("tell: an event reaches every connection of the user", async () => {
    const got: unknown[] = [];
    const offs = [ann, ann2].map((c) => c.onEvent("note", (p) => got.push(p)));
    const reply = await bob.call<{ delivered: number }>("tell", { user: "ann", type: "note", payload: { text: "hi" } });
    assert.equal(reply.delivered, 2);
    await eventually(() => got.length === 2, 3000, "two notes");
    assert.deepEqual(got, [{ text: "hi" }, { text: "hi" }]);
    offs.forEach((off) => off());
  });

  it("shout: an event reaches everyone but the sender", async () => {
    const got: string[] = [];
    ann.onEvent("hey", () => got.push("ann"));
    ann2.onEvent("hey", () => got.push("ann2"));
    bob.onEvent("hey", () => got.push("bob"));
    await bob.call("shout", { type: "hey", payload: 1 });
    await eventually(() => got.length >= 2, 3000, "shouts");
    await sleep(100);
    assert.deepEqual(got.sort(), ["ann", "ann2"]);
  });

  it("ack-me: an acknowledged delivery is delivered once and acknowledged (no resends)", async () => {
    const got: unknown[] = [];
    bob.onEvent("important", (p, ctx) => got.push([p, typeof ctx.id]));
    await bob.call("ack-me", { type: "important", payload: { n: 1 } });
    await eventually(() => got.length === 1, 3000, "the delivery");
    await sleep(1000); // ack timeout is 300 ms: a missing ack would show as resends
    assert.deepEqual(got, [[{ n: 1 }, "number"]]);
    const copies = framesOf(bob).filter((f) => f.startsWith('< ["important"'));
    assert.equal(copies.length, 1, `the server resent the delivery: ${copies.join(" | ")}`);
    const id = (JSON.parse(copies[0]?.slice(2) ?? "[]") as unknown[])[2];
    assert.ok(framesOf(bob).includes(`> ["~ok",null,${String(id)}]`), "acknowledged with [\"~ok\", null, id]");
  });

  it("ack-me without a handler is answered NOT_FOUND and the client stays up", async () => {
    const errors: unknown[] = [];
    const off = bob.on("error", (e) => errors.push(e));
    await bob.call("ack-me", { type: "unhandled-type", payload: null });
    await sleep(400);
    assert.equal(bob.state, "ready");
    off();
  });

  it("the server's events arrive in order", async () => {
    const got: number[] = [];
    ann.onEvent<number>("seq", (n) => got.push(n));
    for (let i = 0; i < 20; i++) await bob.call("tell", { user: "ann", type: "seq", payload: i });
    await eventually(() => got.length >= 20, 3000, "20 events");
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i));
  });

  it("a server request keeps its id space apart from ours", async () => {
    ann.handle("ping-back", (p) => p);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => ann.call("ask", { type: "ping-back", payload: i })),
    );
    assert.deepEqual(results, Array.from({ length: 10 }, (_, i) => i));
  });
});
