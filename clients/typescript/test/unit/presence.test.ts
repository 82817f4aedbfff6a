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

describe("status across reconnects", () => {
  const me = (conn: string, alias: string | null, available: boolean): Peer => ({ conn, user: "ann", alias, available, public: null });

  it("re-applies the status before the directory re-syncs; the directory drops our old connection and shows our current one as it is", async () => {
    const { client, transport, clock } = await readyClient(); // connection c1
    const syncing = client.directory.sync();
    transport.last.ok("~who", { peers: [me("c1", "ann", true), peer("b")] });
    await syncing;

    const renamed = client.setStatus({ alias: "annie" });
    assert.deepEqual(transport.last.request("~status").payload, { alias: "annie" });
    transport.last.ok("~status", me("c1", "annie", true));
    assert.deepEqual(await renamed, me("c1", "annie", true));
    assert.equal(client.directory.get("c1")?.alias, "annie", "our own entry follows the ~status reply");

    const away = client.setStatus({ available: false });
    transport.last.ok("~status", me("c1", "annie", false));
    await away;
    assert.deepEqual(conns(client.directory.list()), ["b"], "unavailable: we are not in the directory");

    transport.last.drop(1006);
    await clock.advance(100);
    transport.last.accept({ conn: "c2" });
    await flush();
    assert.deepEqual(transport.last.sent.map((m) => m.type), ["~hello", "~status", "~who"]);
    assert.deepEqual(transport.last.request("~status").payload, { alias: "annie", available: false });
    // The server has not noticed yet that c1 is gone, and lists c2 as identify made it.
    transport.last.ok("~who", { peers: [me("c1", "annie", false), me("c2", "ann", true), peer("b")] });
    await flush();
    transport.last.ok("~status", me("c2", "annie", false));
    await flush();
    assert.deepEqual(conns(client.directory.list()), ["b"]);
    transport.last.push("~peer", { ...me("c1", "annie", true), online: true }); // late news of the dead connection
    assert.deepEqual(conns(client.directory.list()), ["b"]);

    const back = client.setStatus({ available: true });
    transport.last.ok("~status", me("c2", "annie", true));
    await back;
    assert.deepEqual(conns(client.directory.list()), ["b", "c2"]);
    assert.equal(client.directory.get("c2")?.alias, "annie");
    // While unavailable we were sent no ~peer: listed again, the directory re-syncs.
    assert.equal(transport.last.ofType("~who").length, 2);
  });

  it("a status set while offline goes out once, merged, and its promise settles with the reply", async () => {
    const { client, transport, clock } = await readyClient();
    const first = client.setStatus({ alias: "annie" });
    transport.last.ok("~status", me("c1", "annie", true));
    await first;
    transport.last.drop(1006);
    const offline = client.setStatus({ available: false });
    await clock.advance(100);
    transport.last.accept({ conn: "c2" });
    await flush();
    assert.deepEqual(transport.last.ofType("~status").map((m) => m.payload), [{ alias: "annie", available: false }]);
    transport.last.ok("~status", me("c2", "annie", false));
    assert.deepEqual(await offline, me("c2", "annie", false));
  });

  it("reports a re-applied status that the server refuses", async () => {
    const { client, transport, clock } = await readyClient();
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    const p = client.setStatus({ alias: "annie" });
    transport.last.ok("~status", me("c1", "annie", true));
    await p;
    transport.last.drop(1006);
    await clock.advance(100);
    transport.last.accept({ conn: "c2" });
    await flush();
    transport.last.err("~status", "BAD_REQUEST", "alias taken");
    await flush();
    assert.deepEqual(errors, ["BAD_REQUEST"]);
  });

  it("refuses a malformed status without sending it", async () => {
    const { client, transport } = await readyClient();
    await assert.rejects(client.setStatus({ available: "yes" } as never), { code: "BAD_REQUEST" });
    await assert.rejects(client.setStatus({ alias: 42 } as never), { code: "BAD_REQUEST" });
    assert.equal(transport.last.ofType("~status").length, 0);
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
