/** Publish/subscribe against the fixture. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Publication, SwitchboardClient } from "../../src/index.js";
import { clientFor, eventually, type Fixture, framesOf, sleep, startFixture } from "../support/fixture.js";

describe("topics (fixture)", { timeout: 120_000 }, () => {
  let fx: Fixture;
  let ann: SwitchboardClient;
  let bob: SwitchboardClient;
  before(async () => {
    fx = await startFixture();
    ann = clientFor(fx, "ann");
    bob = clientFor(fx, "bob");
    await Promise.all([ann.connect(), bob.connect()]);
  });
  after(async () => {
    await Promise.all([ann, bob].map((c) => c?.close()));
    await fx?.stop();
  });

  it("subscribes to a chat room and receives another client's publications, with sender and seq", async () => {
    const got: Publication<{ text: string }>[] = [];
    const sub = await ann.subscribe<{ text: string }>("chat/lobby", (p) => got.push(p));
    assert.equal(sub.state, "active");
    assert.equal(typeof sub.epoch, "string");
    const seq0 = sub.seq ?? 0;
    const r1 = await bob.publish("chat/lobby", { text: "one" }, { event: "said" });
    const r2 = await bob.publish("chat/lobby", { text: "two" });
    assert.equal(r2.seq, r1.seq + 1);
    await eventually(() => got.length === 2, 3000, "two publications");
    assert.deepEqual(got.map((p) => [p.data.text, p.seq]), [["one", seq0 + 1], ["two", seq0 + 2]]);
    assert.equal(got[0]?.event, "said");
    assert.equal(got[0]?.from?.user, "bob");
    assert.equal(got[0]?.from?.conn, bob.welcome?.conn);
    assert.equal(sub.seq, seq0 + 2);
  });

  it("a publication with an idempotency key goes out with its key and is accepted", async () => {
    const got: unknown[] = [];
    await ann.subscribe("chat/keyed", (p) => got.push(p.data));
    const r = await bob.publish("chat/keyed", "once", { key: "k-1" });
    assert.equal(typeof r.seq, "number");
    assert.ok(framesOf(bob).some((f) => f.startsWith('> ["~pub",{"topic":"chat/keyed","data":"once","key":"k-1"}')));
    await eventually(() => got.length === 1, 3000, "the publication");
    await assert.rejects(bob.publish("chat/keyed", "x", { key: "k".repeat(65) }), { code: "BAD_REQUEST" });
  });

  it("does not echo a publication to its sender unless asked", async () => {
    const got: unknown[] = [];
    await bob.subscribe("chat/echo", (p) => got.push(p.data));
    await bob.publish("chat/echo", "silent");
    await bob.publish("chat/echo", "loud", { echo: true });
    await eventually(() => got.length >= 1, 3000, "the echo");
    await sleep(100);
    assert.deepEqual(got, ["loud"]);
  });

  it("only the server publishes to todo/: clients get FORBIDDEN; the server's publications arrive", async () => {
    const got: unknown[] = [];
    await ann.subscribe("todo/list1/item1", (p) => got.push(p.data));
    await assert.rejects(ann.publish("todo/list1/item1", { done: true }), { code: "FORBIDDEN" });
    await bob.call("publish", { topic: "todo/list1/item1", event: "updated", data: { done: true } });
    await eventually(() => got.length === 1, 3000, "the server's publication");
    assert.deepEqual(got, [{ done: true }]);
  });

  it("private/<user> is for that user only", async () => {
    const sub = await ann.subscribe("private/ann");
    assert.equal(sub.state, "active");
    await assert.rejects(bob.subscribe("private/ann"), { code: "FORBIDDEN" });
    assert.equal(bob.subscription("private/ann"), undefined);
  });

  it("group/ topics refuse client subscriptions; server-side joins deliver through the message event", async () => {
    await assert.rejects(ann.subscribe("group/g1"), { code: "FORBIDDEN" });
    const got: Publication[] = [];
    ann.on("message", (p) => {
      if (p.topic === "group/g1") got.push(p);
    });
    await ann.call("join", { group: "g1" });
    await bob.call("publish", { topic: "group/g1", data: "to the group" });
    await eventually(() => got.length === 1, 3000, "the group publication");
    assert.equal(got[0]?.data, "to the group");
  });

  it("acked/ deliveries are acknowledged automatically and delivered once", async () => {
    const got: Publication[] = [];
    await ann.subscribe("acked/x", (p) => got.push(p));
    await bob.call("publish", { topic: "acked/x", data: 1 });
    await bob.call("publish", { topic: "acked/x", data: 2 });
    await eventually(() => got.length === 2, 3000, "two acked deliveries");
    await sleep(1000); // ack timeout 300 ms: unacknowledged deliveries would be resent
    assert.deepEqual(got.map((p) => p.data), [1, 2]);
    assert.ok(got.every((p) => typeof p.ackId === "number"), "acked deliveries carry an id");
    const copies = framesOf(ann).filter((f) => f.startsWith('< ["~msg"') && f.includes('"acked/x"'));
    assert.equal(copies.length, 2, `no resends expected: ${copies.join(" | ")}`);
    for (const p of got) assert.ok(framesOf(ann).includes(`> ["~ok",null,${String(p.ackId)}]`));
  });

  it("unsubscribe stops deliveries", async () => {
    const got: unknown[] = [];
    const sub = await ann.subscribe("chat/leave", (p) => got.push(p.data));
    await bob.publish("chat/leave", 1);
    await eventually(() => got.length === 1, 3000, "first");
    await sub.unsubscribe();
    assert.equal(sub.state, "closed");
    await bob.publish("chat/leave", 2);
    await sleep(200);
    assert.deepEqual(got, [1]);
  });

  it("resumes from a stored position (since) and replays history", async () => {
    const first = await bob.subscribe("chat/history");
    const epoch = first.epoch as string;
    const seq = first.seq as number; // where the topic stood before the five publications
    for (let i = 1; i <= 5; i++) await ann.publish("chat/history", i);
    await first.unsubscribe();
    const got: unknown[] = [];
    const c = clientFor(fx, "cal");
    await c.connect();
    const sub = await c.subscribe("chat/history", (p) => got.push(p.data), { since: { epoch, seq: seq + 2 } });
    await eventually(() => got.length === 3, 3000, "three replayed publications");
    assert.deepEqual(got, [3, 4, 5]);
    assert.equal(sub.seq, seq + 5);
    await c.close();
  });
});
