/** Users, presence, status and direct messages against the fixture. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { DirectMessage, SwitchboardClient } from "../../src/index.js";
import { clientFor, dropLink, eventually, type Fixture, next, sleep, startFixture } from "../support/fixture.js";

describe("presence (fixture)", { timeout: 120_000 }, () => {
  let fx: Fixture;
  const clients: SwitchboardClient[] = [];
  const connect = async (user: string) => {
    const c = clientFor(fx, user);
    clients.push(c);
    await c.connect();
    return c;
  };
  before(async () => {
    fx = await startFixture();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await fx?.stop();
  });

  it("the directory lists available aliased connections and follows ~peer updates", async () => {
    const ann = await connect("ann");
    const peers = await ann.directory.sync();
    assert.ok(peers.some((p) => p.conn === ann.welcome?.conn && p.alias === "ann"), "ann sees herself");
    const me = peers.find((p) => p.conn === ann.welcome?.conn);
    assert.deepEqual(me?.public, { since: "fixture" });
    assert.equal(me?.available, true);

    const bob = await connect("bob");
    await eventually(() => ann.directory.byAlias("bob") !== undefined, 3000, "bob in ann's directory");

    await bob.setStatus({ available: false });
    await eventually(() => ann.directory.byAlias("bob") === undefined, 3000, "bob unavailable");
    await bob.setStatus({ available: true, alias: "bobby" });
    await eventually(() => ann.directory.byAlias("bobby") !== undefined, 3000, "bob back as bobby");

    await bob.close();
    await eventually(() => ann.directory.byAlias("bobby") === undefined, 3000, "bob offline");
  });

  it("a status survives reconnects: re-applied at once, and the directory forgets our old connection", async () => {
    const ivy = await connect("ivy");
    const jon = await connect("jon");
    await Promise.all([ivy.directory.sync(), jon.directory.sync()]);
    const first = ivy.welcome?.conn as string;
    const renamed = await ivy.setStatus({ alias: "ivy-2" });
    assert.deepEqual([renamed.conn, renamed.alias, renamed.available], [first, "ivy-2", true]);
    assert.equal(ivy.directory.get(first)?.alias, "ivy-2");
    await eventually(() => jon.directory.byAlias("ivy-2")?.conn === first, 3000, "jon sees ivy-2");

    dropLink(ivy);
    await next((l) => ivy.on("ready", l), 5000, "ivy back");
    const second = ivy.welcome?.conn as string;
    assert.notEqual(second, first);
    await eventually(() => jon.directory.byAlias("ivy-2")?.conn === second, 3000, "jon sees ivy-2 on the new connection");
    await eventually(() => ivy.directory.get(second)?.alias === "ivy-2", 3000, "ivy's own entry, renamed");
    assert.equal(ivy.directory.get(first), undefined, "the old connection is gone from ivy's directory");

    await ivy.setStatus({ available: false });
    assert.equal(ivy.directory.get(second), undefined, "unavailable: not in the directory");
    dropLink(ivy);
    await next((l) => ivy.on("ready", l), 5000, "ivy back again");
    const third = ivy.welcome?.conn as string;
    // The server has the status again: ivy's third connection cannot be reached.
    let answer = "";
    for (let i = 0; i < 100 && answer !== "UNAVAILABLE"; i++) {
      answer = await jon.dm({ conn: third }, "hi").then(
        () => "delivered",
        (e: { code: string }) => e.code,
      );
      if (answer !== "UNAVAILABLE") await sleep(20);
    }
    assert.equal(answer, "UNAVAILABLE");
    await eventually(() => jon.directory.get(third) === undefined && jon.directory.byUser("ivy").length === 0, 3000, "ivy away for jon");
    for (const conn of [first, second, third]) assert.equal(ivy.directory.get(conn), undefined);
  });

  it("who() without a topic returns the directory", async () => {
    const dee = await connect("dee");
    const peers = await dee.who();
    assert.ok(peers.some((p) => p.alias === "dee"));
  });

  it("topic presence syncs from ~who {topic} and follows joins and leaves", async () => {
    const ann = await connect("ann");
    const sub = await ann.subscribe("chat/presence");
    const presence = sub.presence;
    await eventually(() => presence.isSynced, 3000, "first sync");
    assert.deepEqual(presence.list().map((p) => p.conn), [ann.welcome?.conn]);

    const eve = await connect("eve");
    const eveSub = await eve.subscribe("chat/presence");
    await eventually(() => presence.byUser("eve").length === 1, 3000, "eve joins");
    assert.deepEqual(presence.byUser("eve")[0]?.conn, eve.welcome?.conn);
    assert.deepEqual((await eve.who("chat/presence")).map((p) => p.user).sort(), ["ann", "eve"]);

    await eveSub.unsubscribe();
    await eventually(() => presence.byUser("eve").length === 0, 3000, "eve leaves");
  });

  it("who {topic} is only for subscribers", async () => {
    const fay = await connect("fay");
    await assert.rejects(fay.who("chat/not-subscribed"));
  });

  it("direct messages by alias and by conn, UNAVAILABLE and NOT_FOUND", async () => {
    const gus = await connect("gus");
    const hal = await connect("hal");
    const got: DirectMessage[] = [];
    hal.onDm((dm) => got.push(dm));
    await gus.dm({ alias: "hal" }, { text: "by alias" });
    await gus.dm({ conn: hal.welcome?.conn as string }, { text: "by conn" });
    await eventually(() => got.length === 2, 3000, "two dms");
    assert.deepEqual(got.map((d) => d.data), [{ text: "by alias" }, { text: "by conn" }]);
    assert.equal(got[0]?.from.user, "gus");
    assert.equal(got[0]?.from.alias, "gus");
    assert.equal(got[0]?.from.conn, gus.welcome?.conn);

    await assert.rejects(gus.dm({ alias: "nobody-here" }, 1), { code: "NOT_FOUND" });
    await hal.setStatus({ available: false });
    await assert.rejects(gus.dm({ conn: hal.welcome?.conn as string }, 1), { code: "UNAVAILABLE" });
  });
});
