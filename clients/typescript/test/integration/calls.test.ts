/** Requests and errors against the fixture. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SwitchboardError, type SwitchboardClient } from "../../src/index.js";
import { clientFor, type Fixture, framesOf, next, sleep, startFixture } from "../support/fixture.js";

describe("calls (fixture)", { timeout: 120_000 }, () => {
  let fx: Fixture;
  let c: SwitchboardClient;
  before(async () => {
    fx = await startFixture();
    c = clientFor(fx, "ann");
    await c.connect();
  });
  after(async () => {
    await c?.close();
    await fx?.stop();
  });

  it("echo returns the payload", async () => {
    const payload = { text: "héllo", n: [1, 2, 3], nested: { ok: true }, nothing: null };
    assert.deepEqual(await c.call("echo", payload), payload);
  });

  it("add returns a typed sum", async () => {
    const sum: number = await c.call<number>("add", { a: 1, b: 2 }, { timeoutMs: 5000 });
    assert.equal(sum, 3);
  });

  it("add with a non-number is BAD_REQUEST", async () => {
    await assert.rejects(c.call("add", { a: "1", b: 2 }), { code: "BAD_REQUEST" });
  });

  it("fail rejects with the application code TEAPOT", async () => {
    await assert.rejects(c.call("fail"), (e: unknown) => {
      assert.ok(e instanceof SwitchboardError);
      assert.equal(e.code, "TEAPOT");
      assert.equal(e.message, "I'm a teapot");
      return true;
    });
  });

  it("panic is FAILED and the connection lives on", async () => {
    await assert.rejects(c.call("panic"), { code: "FAILED" });
    assert.equal(await c.call("add", { a: 1, b: 1 }), 2);
    assert.equal(c.state, "ready");
  });

  it("a request slower than its timeout rejects with TIMEOUT", async () => {
    const t0 = Date.now();
    await assert.rejects(c.call("sleep", { ms: 1000 }, { timeoutMs: 100 }), { code: "TIMEOUT" });
    assert.ok(Date.now() - t0 < 900);
    assert.equal(await c.call("sleep", { ms: 20 }), null);
  });

  it("an unknown request is NOT_FOUND", async () => {
    await assert.rejects(c.call("no-such-thing"), { code: "NOT_FOUND" });
  });

  it("the filter refuses forbidden payloads with FORBIDDEN", async () => {
    await assert.rejects(c.call("echo", { forbidden: true }), { code: "FORBIDDEN" });
  });

  it("the public status request answers", async () => {
    assert.deepEqual(await c.call("status"), { ok: true });
  });

  it("an event with no handler comes back as a NOT_FOUND push", async () => {
    const err = next<SwitchboardError>((l) => c.on("error", l));
    c.send("no-such-event", { x: 1 });
    const e = await err;
    assert.equal(e.code, "NOT_FOUND");
  });

  it("answers the client's ~ping heartbeat, so the link stays up", async () => {
    const pinged = clientFor(fx, "pia", { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1000 });
    await pinged.connect();
    await sleep(450);
    const pings = framesOf(pinged).filter((f) => f.startsWith('> ["~ping"'));
    assert.ok(pings.length >= 3, `expected several pings, saw ${pings.length}`);
    assert.equal(pinged.state, "ready");
    await pinged.close();
  });

  it("handlers that await do not hold back later requests", async () => {
    const order: string[] = [];
    await Promise.all([
      c.call("sleep", { ms: 300 }).then(() => order.push("slow")),
      c.call("echo", "fast").then(() => order.push("fast")),
    ]);
    assert.deepEqual(order, ["fast", "slow"]);
  });
});
