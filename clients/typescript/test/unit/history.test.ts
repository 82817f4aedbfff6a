/** `history()`: the `~history` request (protocol §5), its validation, its reply and its errors. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SwitchboardError, type History } from "../../src/index.js";
import { flush } from "../support/fake-clock.js";
import { fakeClient, readyClient } from "../support/setup.js";

const reply = {
  topic: "chat/a",
  epoch: "e1",
  seq: 12,
  publications: [
    { seq: 11, event: "said", data: { text: "hi" }, from: { conn: "c2", user: "bob" } },
    { seq: 12, data: { text: "there" } },
  ],
};

describe("history()", () => {
  it("sends ~history with the topic and resolves with the typed reply", async () => {
    const { client, transport } = await readyClient();
    const p = client.history<{ text: string }>("chat/a");
    assert.deepEqual(transport.last.request("~history").payload, { topic: "chat/a" });
    transport.last.ok("~history", reply);
    const h: History<{ text: string }> = await p;
    assert.deepEqual(h, reply);
    assert.equal(h.publications[0]?.data.text, "hi");
  });

  it("sends limit and since", async () => {
    const { client, transport } = await readyClient();
    const p = client.history("chat/a", { limit: 5, since: { epoch: "e1", seq: 10 }, timeoutMs: 1000 });
    assert.deepEqual(transport.last.request("~history").payload, { topic: "chat/a", limit: 5, since: { epoch: "e1", seq: 10 } });
    transport.last.ok("~history", { topic: "chat/a", epoch: "e2", seq: 3, publications: [] }); // another epoch: nothing
    const h = await p;
    assert.equal(h.epoch, "e2");
    assert.deepEqual(h.publications, []);
  });

  for (const code of ["FORBIDDEN", "NOT_FOUND", "BAD_REQUEST"]) {
    it(`rejects with the server's ${code}`, async () => {
      const { client, transport } = await readyClient();
      const p = client.history("chat/a");
      transport.last.err("~history", code, `no: ${code}`);
      await assert.rejects(p, (e: unknown) => e instanceof SwitchboardError && e.code === code && e.message === `no: ${code}`);
    });
  }

  for (const [what, options] of [
    ["limit 0", { limit: 0 }],
    ["a negative limit", { limit: -1 }],
    ["a fractional limit", { limit: 1.5 }],
    ["a limit that is a string", { limit: "3" }],
    ["since without epoch", { since: { seq: 1 } }],
    ["since with a negative seq", { since: { epoch: "e", seq: -1 } }],
  ] as const) {
    it(`refuses ${what} with BAD_REQUEST, without sending`, async () => {
      const { client, transport } = await readyClient();
      await assert.rejects(client.history("chat/a", options as never), { code: "BAD_REQUEST" });
      assert.equal(transport.last.ofType("~history").length, 0);
    });
  }

  it("refuses a topic that is not a non-empty string", async () => {
    const { client } = await readyClient();
    await assert.rejects(client.history(""), { code: "BAD_REQUEST" });
    await assert.rejects(client.history(7 as never), { code: "BAD_REQUEST" });
  });

  it("rejects a malformed reply with PROTOCOL", async () => {
    const { client, transport } = await readyClient();
    const p = client.history("chat/a");
    transport.last.ok("~history", { topic: "chat/a", epoch: "e1", seq: 1, publications: [{ data: 1 }] });
    await assert.rejects(p, { code: "PROTOCOL" });
  });

  it("waits in the offline buffer like any request", async () => {
    const { client, transport, clock } = fakeClient();
    const p = client.history("chat/a", { limit: 1 });
    void client.connect();
    await clock.advance(0);
    transport.last.accept();
    await flush();
    transport.last.ok("~history", { ...reply, publications: reply.publications.slice(1) });
    assert.equal((await p).publications.length, 1);
  });
});
