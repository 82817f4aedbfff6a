/** Subscriptions: delivery, dedupe, acknowledged deliveries, resubscription with recovery. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SwitchboardError, type Publication, type RecoveryInfo } from "../../src/index.js";
import { flush } from "../support/fake-clock.js";
import type { FakeSocket } from "../support/fake-transport.js";
import { fakeClient, readyClient } from "../support/setup.js";

const msg = (socket: FakeSocket, topic: string, seq: number, data: unknown = seq, id?: number) =>
  id === undefined ? socket.push("~msg", { topic, data, seq }) : socket.push("~msg", { topic, data, seq }, id);

describe("subscribe()", () => {
  it("sends ~sub, resolves on the reply and delivers publications", async () => {
    const { client, transport } = await readyClient();
    const got: Publication<string>[] = [];
    const subscribing = client.subscribe<string>("chat/a", (p) => got.push(p));
    assert.deepEqual(transport.last.request("~sub").payload, { topic: "chat/a" });
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 4, recovered: false });
    const sub = await subscribing;
    assert.equal(sub.state, "active");
    assert.equal(sub.epoch, "e1");
    assert.equal(sub.seq, 4);
    transport.last.push("~msg", { topic: "chat/a", event: "said", data: "hi", seq: 5, from: { conn: "c2", user: "bob" } });
    assert.deepEqual(got, [{ topic: "chat/a", event: "said", data: "hi", seq: 5, from: { conn: "c2", user: "bob" } }]);
    assert.equal(sub.seq, 5);
  });

  it("drops a publication whose seq was already delivered", async () => {
    const { client, transport } = await readyClient();
    const got: number[] = [];
    const p = client.subscribe<number>("chat/a", (m) => got.push(m.seq));
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 0, recovered: false });
    await p;
    for (const seq of [1, 2, 2, 3]) msg(transport.last, "chat/a", seq);
    assert.deepEqual(got, [1, 2, 3]);
  });

  it("drops a seq that goes back within the epoch: a delivery names its epoch whenever it changed", async () => {
    const { client, transport } = await readyClient();
    const got: number[] = [];
    const recoveries: RecoveryInfo[] = [];
    client.on("recovery", (r) => recoveries.push(r));
    const p = client.subscribe<number>("chat/a", (m) => got.push(m.seq));
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 7, recovered: false });
    const sub = await p;
    for (const seq of [8, 1, 2, 9]) msg(transport.last, "chat/a", seq);
    assert.deepEqual(got, [8, 9]);
    assert.deepEqual(recoveries, []);
    assert.equal(sub.epoch, "e1");
    assert.equal(sub.seq, 9);
  });

  it("takes a delivery with a new epoch even when its seq is not above the last, and counts from it", async () => {
    const { client, transport, clock } = await readyClient();
    const got: string[] = [];
    const recoveries: RecoveryInfo[] = [];
    client.on("recovery", (r) => recoveries.push(r));
    const p = client.subscribe<number>("chat/a", (m) => got.push(`${m.epoch ?? "-"}:${m.seq}`));
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 7, recovered: false });
    const sub = await p;
    msg(transport.last, "chat/a", 8);
    transport.last.push("~msg", { topic: "chat/a", data: 0, seq: 8, epoch: "e2" }); // the stream restarted
    assert.deepEqual(recoveries, [{ topic: "chat/a", epoch: "e2", seq: 8, recovered: false, previous: { epoch: "e1", seq: 8 } }]);
    assert.equal(sub.epoch, "e2");
    msg(transport.last, "chat/a", 9); // no epoch: the one we were last told
    msg(transport.last, "chat/a", 9); // a duplicate within e2
    transport.last.push("~msg", { topic: "chat/a", data: 0, seq: 8, epoch: "e2" }); // explicitly e2: a duplicate too
    assert.deepEqual(got, ["-:8", "e2:8", "-:9"]);
    assert.equal(recoveries.length, 1);
    assert.deepEqual([sub.epoch, sub.seq], ["e2", 9]);

    transport.last.drop(1006);
    await clock.advance(100);
    transport.last.accept();
    await flush();
    assert.deepEqual(transport.last.request("~sub").payload, { topic: "chat/a", since: { epoch: "e2", seq: 9 } });
  });

  it("a new epoch that starts again at 1 is the new epoch, not an unknown one", async () => {
    const { client, transport } = await readyClient();
    const p = client.subscribe("chat/a");
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 5, recovered: false });
    const sub = await p;
    const recovered: boolean[] = [];
    sub.on("recovery", (r) => recovered.push(r.recovered));
    transport.last.push("~msg", { topic: "chat/a", data: 0, seq: 1, epoch: "e2" });
    assert.deepEqual([sub.epoch, sub.seq, recovered], ["e2", 1, [false]]);
  });

  it("acknowledges acked deliveries and drops resends by id", async () => {
    const { client, transport } = await readyClient();
    const got: Publication[] = [];
    const p = client.subscribe("acked/x", (m) => got.push(m));
    transport.last.ok("~sub", { topic: "acked/x", epoch: "e", seq: 0, recovered: false });
    await p;
    msg(transport.last, "acked/x", 1, "a", 90);
    msg(transport.last, "acked/x", 1, "a", 90);
    assert.equal(got.length, 1);
    assert.equal(got[0]?.ackId, 90);
    assert.deepEqual(transport.last.ofType("~ok"), [
      { type: "~ok", payload: null, id: 90 },
      { type: "~ok", payload: null, id: 90 },
    ]);
  });

  it("rejects with the server's code when refused", async () => {
    const { client, transport } = await readyClient();
    const p = client.subscribe("group/g");
    transport.last.err("~sub", "FORBIDDEN", "server-side joins only");
    await assert.rejects(p, { code: "FORBIDDEN" });
    assert.deepEqual(client.topicsSubscribed, []);
  });

  it("waits for the connection when offline, within its timeout", async () => {
    const { client, transport, clock } = fakeClient();
    const p = client.subscribe("chat/a", undefined, { timeoutMs: 10_000 });
    const late = client.subscribe("chat/b", undefined, { timeoutMs: 10 });
    const rejected = assert.rejects(late, { code: "TIMEOUT" });
    void client.connect();
    await clock.advance(10);
    await rejected;
    transport.last.accept();
    await flush();
    assert.deepEqual(transport.last.ofType("~sub").map((m) => m.payload), [{ topic: "chat/a" }]);
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e", seq: 0, recovered: false });
    assert.equal((await p).topic, "chat/a");
  });

  it("delivers publications of server-side groups through the client's message event", async () => {
    const { client, transport } = await readyClient();
    const got: string[] = [];
    client.on("message", (m) => got.push(m.topic));
    msg(transport.last, "group/g1", 1);
    assert.deepEqual(got, ["group/g1"]);
  });

  it("unsubscribes", async () => {
    const { client, transport } = await readyClient();
    const p = client.subscribe("chat/a");
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e", seq: 0, recovered: false });
    const sub = await p;
    const closed: unknown[] = [];
    sub.on("closed", (c) => closed.push(c));
    const done = sub.unsubscribe();
    assert.deepEqual(transport.last.request("~unsub").payload, { topic: "chat/a" });
    transport.last.ok("~unsub", { topics: ["chat/a"] });
    await done;
    assert.equal(sub.state, "closed");
    assert.equal(closed.length, 1);
    msg(transport.last, "chat/a", 1);
  });
});

describe("resubscription after a reconnect", () => {
  async function subscribed() {
    const setup = await readyClient();
    const got: number[] = [];
    const p = setup.client.subscribe<number>("chat/a", (m) => got.push(m.seq));
    setup.transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 10, recovered: false });
    const sub = await p;
    msg(setup.transport.last, "chat/a", 11);
    const recoveries: RecoveryInfo[] = [];
    setup.client.on("recovery", (r) => recoveries.push(r));
    setup.transport.last.drop(1006);
    assert.equal(sub.state, "resubscribing");
    await setup.clock.advance(100);
    setup.transport.last.accept();
    await flush();
    return { ...setup, sub, got, recoveries };
  }

  it("resubscribes with the last epoch and seq", async () => {
    const { transport } = await subscribed();
    assert.deepEqual(transport.last.request("~sub").payload, { topic: "chat/a", since: { epoch: "e1", seq: 11 } });
  });

  it("delivers recovered publications in order, even if they arrive before the reply and out of order", async () => {
    const { transport, got, recoveries, sub } = await subscribed();
    msg(transport.last, "chat/a", 13);
    msg(transport.last, "chat/a", 12);
    assert.deepEqual(got, [11], "held until the reply");
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 14, recovered: true });
    await flush();
    msg(transport.last, "chat/a", 14);
    msg(transport.last, "chat/a", 14); // duplicate
    assert.deepEqual(got, [11, 12, 13, 14]);
    assert.deepEqual(recoveries, [{ topic: "chat/a", epoch: "e1", seq: 14, recovered: true, previous: { epoch: "e1", seq: 11 } }]);
    assert.equal(sub.state, "active");
  });

  it("orders publications held during the resubscription by seq within each epoch, epochs in arrival order", async () => {
    const { transport, got, recoveries, sub } = await subscribed();
    msg(transport.last, "chat/a", 13);
    msg(transport.last, "chat/a", 12);
    transport.last.push("~msg", { topic: "chat/a", data: 2, seq: 2, epoch: "e2" });
    transport.last.push("~msg", { topic: "chat/a", data: 1, seq: 1, epoch: "e2" });
    msg(transport.last, "chat/a", 3); // e2, the epoch last told
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 13, recovered: true });
    await flush();
    assert.deepEqual(got, [11, 12, 13, 1, 2, 3]);
    assert.deepEqual(
      recoveries.map((r) => [r.epoch, r.seq, r.recovered]),
      [["e1", 13, true], ["e2", 1, false]],
    );
    assert.deepEqual([sub.epoch, sub.seq], ["e2", 3]);
  });

  it("delivers recovered publications that follow the reply", async () => {
    const { transport, got } = await subscribed();
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e1", seq: 13, recovered: true });
    await flush();
    msg(transport.last, "chat/a", 12);
    msg(transport.last, "chat/a", 13);
    assert.deepEqual(got, [11, 12, 13]);
  });

  it("tells the application when recovery failed and restarts from the new epoch", async () => {
    const { transport, got, recoveries, sub } = await subscribed();
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e2", seq: 0, recovered: false });
    await flush();
    assert.deepEqual(recoveries, [{ topic: "chat/a", epoch: "e2", seq: 0, recovered: false, previous: { epoch: "e1", seq: 11 } }]);
    assert.equal(sub.epoch, "e2");
    msg(transport.last, "chat/a", 1);
    assert.deepEqual(got, [11, 1]);
  });

  it("ends the subscription if the resubscription is refused", async () => {
    const { transport, sub, client } = await subscribed();
    const closed: unknown[] = [];
    sub.on("closed", (c) => closed.push(c));
    transport.last.err("~sub", "FORBIDDEN", "no longer allowed");
    await flush();
    assert.equal(sub.state, "closed");
    assert.equal((closed[0] as { error: { code: string } }).error.code, "FORBIDDEN");
    assert.deepEqual(client.topicsSubscribed, []);
  });

  it("retries on the next connection if the link drops during resubscription", async () => {
    const { transport, clock } = await subscribed();
    transport.last.drop(1006);
    await clock.advance(100);
    transport.last.accept();
    await flush();
    assert.deepEqual(transport.last.request("~sub").payload, { topic: "chat/a", since: { epoch: "e1", seq: 11 } });
  });
});

describe("publish()", () => {
  it("sends topic, data, event, echo and key", async () => {
    const { client, transport } = await readyClient();
    const p = client.publish("chat/a", { text: "hi" }, { event: "said", echo: true, key: "msg-7f3a" });
    assert.deepEqual(transport.last.request("~pub").payload, { topic: "chat/a", data: { text: "hi" }, event: "said", echo: true, key: "msg-7f3a" });
    transport.last.ok("~pub", { seq: 3 });
    assert.deepEqual(await p, { seq: 3 });
    void client.publish("chat/a", 1);
    assert.deepEqual(transport.last.request("~pub").payload, { topic: "chat/a", data: 1 });
  });

  it("accepts a key of 64 bytes, counted in UTF-8", async () => {
    const { client, transport } = await readyClient();
    for (const key of ["a".repeat(64), "é".repeat(32), "😀".repeat(16)]) {
      void client.publish("chat/a", 1, { key });
      assert.equal((transport.last.request("~pub").payload as { key: string }).key, key);
    }
  });

  for (const [what, key] of [
    ["65 ASCII bytes", "a".repeat(65)],
    ["66 bytes in 33 characters", "é".repeat(33)],
    ["a number", 7],
  ] as const) {
    it(`refuses a key of ${what} with BAD_REQUEST, without sending`, async () => {
      const { client, transport } = await readyClient();
      await assert.rejects(client.publish("chat/a", 1, { key: key as string }), (e: unknown) => {
        assert.ok(e instanceof SwitchboardError);
        assert.equal(e.code, "BAD_REQUEST");
        assert.match(e.message, /key/);
        return true;
      });
      assert.equal(transport.last.ofType("~pub").length, 0);
    });
  }
});
