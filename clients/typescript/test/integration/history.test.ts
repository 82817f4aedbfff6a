/**
 * `~history` against the fixture (protocol §5, appendix A: `chat/<room>` and `todo/<list>/<item>`
 * keep 100 publications, `~history` is allowed to whoever may subscribe; `private/<user>` is
 * that user's and `acked/<x>` keep none; `group/<g>` refuses client subscriptions).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SwitchboardClient } from "../../src/index.js";
import { clientFor, type Fixture, startFixture } from "../support/fixture.js";

describe("history (fixture)", { timeout: 120_000 }, () => {
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

  it("returns the retained publications oldest first, with the topic's epoch and latest seq", async () => {
    for (const text of ["one", "two", "three"]) await bob.publish("chat/hist-a", { text }, { event: "said" });
    const h = await ann.history<{ text: string }>("chat/hist-a");
    assert.equal(h.topic, "chat/hist-a");
    assert.equal(h.seq, 3);
    assert.deepEqual(h.publications.map((p) => [p.seq, p.event, p.data.text]), [[1, "said", "one"], [2, "said", "two"], [3, "said", "three"]]);
    assert.equal(h.publications[0]?.from?.user, "bob");
    const sub = await ann.subscribe("chat/hist-a");
    assert.equal(h.epoch, sub.epoch, "the epoch a ~sub answers");
  });

  it("limit: the newest N", async () => {
    for (let i = 1; i <= 5; i++) await bob.publish("chat/hist-b", i);
    const h = await ann.history<number>("chat/hist-b", { limit: 2 });
    assert.deepEqual(h.publications.map((p) => p.data), [4, 5]);
    assert.equal(h.seq, 5);
  });

  it("since: the publications after a position of the same epoch; another epoch answers none", async () => {
    for (let i = 1; i <= 4; i++) await bob.publish("chat/hist-c", i);
    const { epoch } = await ann.history("chat/hist-c", { limit: 1 });
    const after2 = await ann.history<number>("chat/hist-c", { since: { epoch, seq: 2 } });
    assert.deepEqual(after2.publications.map((p) => [p.seq, p.data]), [[3, 3], [4, 4]]);
    const other = await ann.history("chat/hist-c", { since: { epoch: `${epoch}-not`, seq: 2 } });
    assert.deepEqual(other.publications, []);
    assert.equal(other.epoch, epoch);
    assert.notEqual(other.epoch, `${epoch}-not`);
  });

  it("a topic with history and no publication yet: an empty list at seq 0", async () => {
    const h = await ann.history("chat/hist-empty");
    assert.deepEqual([h.seq, h.publications], [0, []]);
  });

  it("server-published todo/ topics are readable by anyone who may subscribe", async () => {
    await bob.call("publish", { topic: "todo/l1/hist", data: { done: true } });
    const h = await ann.history("todo/l1/hist");
    assert.deepEqual(h.publications.map((p) => p.data), [{ done: true }]);
  });

  it("FORBIDDEN where one may not subscribe (another user's private topic, a group), checked before NOT_FOUND", async () => {
    await assert.rejects(ann.history("private/bob"), { code: "FORBIDDEN" });
    await assert.rejects(ann.history("group/g1"), { code: "FORBIDDEN" });
    await assert.rejects(bob.history("private/bob"), { code: "NOT_FOUND" }, "allowed, but private/ keeps no history");
  });

  it("NOT_FOUND where the topic keeps no history", async () => {
    await assert.rejects(ann.history("acked/hist"), { code: "NOT_FOUND" });
  });

  it("BAD_REQUEST for a limit the server refuses, a malformed topic", async () => {
    await assert.rejects(ann.call("~history", { topic: "chat/hist-a", limit: 0 }), { code: "BAD_REQUEST" });
    await assert.rejects(ann.history("chat/bad topic!"), { code: "BAD_REQUEST" });
  });
});
