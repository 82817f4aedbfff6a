/** Less travelled paths of the lifecycle and of subscriptions. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SwitchboardError } from "../../src/index.js";
import { flush } from "../support/fake-clock.js";
import { fakeClient, readyClient } from "../support/setup.js";

describe("edges", () => {
  it("retries with backoff when the identity provider fails, and reports it", async () => {
    let calls = 0;
    const { client, transport, clock } = fakeClient({
      identity: async () => {
        if (++calls === 1) throw new Error("token service down");
        return { token: "ok" };
      },
    });
    const errors: SwitchboardError[] = [];
    client.on("error", (e) => errors.push(e));
    const welcome = client.connect();
    await flush();
    assert.equal(transport.sockets.length, 0, "no socket without an identity");
    assert.equal(client.state, "reconnecting");
    assert.match(errors[0]?.message ?? "", /token service down/);
    await clock.advance(50);
    transport.last.accept();
    await welcome;
    assert.deepEqual(transport.last.request("~hello").payload, { identity: { token: "ok" } });
  });

  it("calls a meta function at every connection", async () => {
    let n = 0;
    const { transport } = await readyClient({ meta: () => ({ attempt: ++n }) });
    assert.deepEqual((transport.last.request("~hello").payload as { meta: unknown }).meta, { attempt: 1 });
  });

  it("close() during the backoff wait cancels the reconnection", async () => {
    const { client, transport, clock } = await readyClient();
    transport.last.drop(1006);
    assert.equal(client.state, "reconnecting");
    await client.close();
    await clock.advance(10_000);
    assert.equal(transport.sockets.length, 1);
    assert.equal(client.state, "closed");
  });

  it("close() while identifying rejects connect() and closes the socket", async () => {
    const { client, transport } = fakeClient();
    const welcome = client.connect();
    await flush();
    transport.last.open();
    const closing = client.close();
    await assert.rejects(welcome, { code: "DISCONNECTED" });
    await closing;
    assert.equal(transport.last.closedWith?.code, 1000);
  });

  it("subscribing twice to a topic shares one subscription", async () => {
    const { client, transport } = await readyClient();
    const a: number[] = [];
    const b: number[] = [];
    const p1 = client.subscribe<number>("chat/x", (m) => a.push(m.data));
    const p2 = client.subscribe<number>("chat/x", (m) => b.push(m.data));
    assert.equal(transport.last.ofType("~sub").length, 1);
    transport.last.ok("~sub", { topic: "chat/x", epoch: "e", seq: 0, recovered: false });
    const [s1, s2] = await Promise.all([p1, p2]);
    assert.equal(s1, s2);
    transport.last.push("~msg", { topic: "chat/x", data: 7, seq: 1 });
    assert.deepEqual([a, b], [[7], [7]]);
  });

  it("the subscribed event tells a resubscription from the first subscription", async () => {
    const { client, transport, clock } = await readyClient();
    const seen: { resubscribed: boolean; recovered: boolean }[] = [];
    const p = client.subscribe("chat/x");
    client.subscription("chat/x")?.on("subscribed", (i) => seen.push({ resubscribed: i.resubscribed, recovered: i.recovered }));
    transport.last.ok("~sub", { topic: "chat/x", epoch: "e", seq: 3, recovered: false });
    const sub = await p;
    transport.last.drop(4000);
    assert.equal(sub.state, "resubscribing");
    await clock.advance(100);
    transport.last.accept();
    await flush();
    transport.last.ok("~sub", { topic: "chat/x", epoch: "e", seq: 3, recovered: true });
    await flush();
    assert.deepEqual(seen, [
      { resubscribed: false, recovered: false },
      { resubscribed: true, recovered: true },
    ]);
  });

  it("a closed client refuses new work with DISCONNECTED", async () => {
    const { client } = await readyClient();
    await client.close();
    await assert.rejects(client.subscribe("chat/x"), { code: "DISCONNECTED" });
    assert.throws(() => client.send("x"), { code: "DISCONNECTED" });
  });
});
