/** Presence: directory and topic presence from snapshots and diffs. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Peer } from "../../src/index.js";
import { flush } from "../support/fake-clock.js";
import { readyClient } from "../support/setup.js";

const peer = (conn: string, alias: string | null = conn, available = true): Peer => ({
  conn,
  user: alias,
  alias,
  available,
  public: { since: "fixture" },
});
const conns = (peers: readonly Peer[]) => peers.map((p) => p.conn).sort();

describe("directory", () => {
  it("syncs from ~who and follows ~peer updates", async () => {
    const { client, transport } = await readyClient();
    const syncing = client.directory.sync();
    assert.deepEqual(transport.last.request("~who").payload, {});
    transport.last.ok("~who", { peers: [peer("a"), peer("b")] });
    assert.deepEqual(conns(await syncing), ["a", "b"]);
    const events: string[] = [];
    client.directory.on("join", (p) => events.push(`+${p.conn}`));
    client.directory.on("leave", (p) => events.push(`-${p.conn}`));
    transport.last.push("~peer", { ...peer("c"), online: true });
    transport.last.push("~peer", { ...peer("a"), online: false });
    transport.last.push("~peer", { ...peer("b", "b", false), online: true }); // no longer available
    assert.deepEqual(conns(client.directory.list()), ["c"]);
    assert.deepEqual(events, ["+c", "-a", "-b"]);
    assert.equal(client.directory.byAlias("c")?.conn, "c");
  });

  it("applies updates that arrive during the sync on top of the snapshot", async () => {
    const { client, transport } = await readyClient();
    const syncing = client.directory.sync();
    transport.last.push("~peer", { ...peer("x"), online: true });
    transport.last.push("~peer", { ...peer("a"), online: false });
    transport.last.ok("~who", { peers: [peer("a"), peer("b")] });
    assert.deepEqual(conns(await syncing), ["b", "x"]);
  });

  it("re-syncs after a reconnect", async () => {
    const { client, transport, clock } = await readyClient();
    const s = client.directory.sync();
    transport.last.ok("~who", { peers: [peer("a")] });
    await s;
    transport.last.drop(1006);
    await clock.advance(100);
    transport.last.accept();
    await flush();
    transport.last.ok("~who", { peers: [peer("b")] });
    await flush();
    assert.deepEqual(conns(client.directory.list()), ["b"]);
  });
});

describe("topic presence", () => {
  it("syncs from ~who {topic}, follows ~presence diffs and re-syncs after resubscribing", async () => {
    const { client, transport, clock } = await readyClient();
    const p = client.subscribe("chat/a");
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e", seq: 0, recovered: false });
    const sub = await p;
    const presence = sub.presence;
    assert.deepEqual(transport.last.request("~who").payload, { topic: "chat/a" });
    transport.last.ok("~who", { peers: [peer("me"), peer("b")] });
    await flush();
    assert.deepEqual(conns(presence.list()), ["b", "me"]);
    transport.last.push("~presence", { topic: "chat/a", joins: [peer("c")], leaves: [peer("b")] });
    transport.last.push("~presence", { topic: "chat/other", joins: [peer("zzz")], leaves: [] });
    assert.deepEqual(conns(presence.list()), ["c", "me"]);

    transport.last.drop(1006);
    await clock.advance(100);
    transport.last.accept();
    await flush();
    transport.last.ok("~sub", { topic: "chat/a", epoch: "e", seq: 0, recovered: true });
    await flush();
    assert.deepEqual(transport.last.request("~who").payload, { topic: "chat/a" });
    transport.last.ok("~who", { peers: [peer("me2")] });
    await flush();
    assert.deepEqual(conns(presence.list()), ["me2"]);
  });
});
