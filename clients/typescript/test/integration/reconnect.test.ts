/**
 * Reconnection against the fixture: a dropped link (the server stays up: recovery works), a
 * killed and restarted server (history lost: recovered:false with a new epoch), non-reconnecting
 * closes (kick 4503, eviction 4502), the offline buffer.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { ClientState, CloseInfo, RecoveryInfo, SwitchboardClient } from "../../src/index.js";
import { clientFor, dropLink, eventually, type Fixture, framesOf, next, sleep, startFixture } from "../support/fixture.js";

describe("reconnect (fixture)", { timeout: 120_000 }, () => {
  const fixtures: Fixture[] = [];
  const clients: SwitchboardClient[] = [];
  const start = async (port = 0) => {
    const fx = await startFixture(port);
    fixtures.push(fx);
    return fx;
  };
  const client = (...args: Parameters<typeof clientFor>) => {
    const c = clientFor(...args);
    clients.push(c);
    return c;
  };
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(fixtures.map((f) => f.stop("SIGKILL")));
  });

  it("a dropped link (1006) reconnects, resubscribes from its seq and recovers what it missed, in order", async () => {
    const fx = await start();
    const ann = client(fx, "ann");
    const bob = client(fx, "bob");
    await Promise.all([ann.connect(), bob.connect()]);
    const got: number[] = [];
    const sub = await ann.subscribe<number>("chat/recover", (p) => got.push(p.data));
    await bob.publish("chat/recover", 1);
    await eventually(() => got.length === 1, 3000, "first publication");
    const epoch = sub.epoch;

    const states: ClientState[] = [];
    ann.on("state", (s) => states.push(s.state));
    const recovery = next<RecoveryInfo>((l) => ann.on("recovery", l), 10_000, "recovery");
    const closed = next<CloseInfo>((l) => ann.on("close", l));
    dropLink(ann);
    const info = await closed;
    assert.equal(info.code, 1006);
    assert.equal(info.willReconnect, true);
    for (let i = 2; i <= 6; i++) await bob.publish("chat/recover", i); // while ann is away

    const r = await recovery;
    assert.equal(r.recovered, true);
    const resub = `> ["~sub",{"topic":"chat/recover","since":{"epoch":${JSON.stringify(epoch)},"seq":1}}`;
    assert.ok(framesOf(ann).some((f) => f.startsWith(resub)), `expected ${resub}…`);
    assert.equal(r.epoch, epoch);
    await eventually(() => got.length === 6, 3000, "recovered publications");
    await bob.publish("chat/recover", 7);
    await eventually(() => got.length === 7, 3000, "live publication after recovery");
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(states.slice(0, 2), ["reconnecting", "ready"]);
    assert.equal(sub.state, "active");
  });

  it("a request in flight when the link drops rejects with DISCONNECTED", async () => {
    const fx = await start();
    const c = client(fx, "cid");
    await c.connect();
    const p = c.call("sleep", { ms: 2000 });
    await sleep(50);
    dropLink(c);
    await assert.rejects(p, { code: "DISCONNECTED" });
    await next((l) => c.on("ready", l));
    assert.equal(await c.call("add", { a: 1, b: 1 }), 2);
  });

  it("a killed server restarted on the same port: reconnect, resubscribe, recovered:false with a new epoch", async () => {
    const fx = await start();
    const ann = client(fx, "ann");
    const bob = client(fx, "bob");
    await Promise.all([ann.connect(), bob.connect()]);
    const got: number[] = [];
    const sub = await ann.subscribe<number>("chat/restart", (p) => got.push(p.data));
    await bob.subscribe("chat/restart");
    for (let i = 1; i <= 3; i++) await bob.publish("chat/restart", i);
    await eventually(() => got.length === 3, 3000, "three publications");
    const oldEpoch = sub.epoch;

    const recoveries: RecoveryInfo[] = [];
    ann.on("recovery", (r) => recoveries.push(r));
    const closes: CloseInfo[] = [];
    ann.on("close", (c) => closes.push(c));
    await fx.stop("SIGKILL"); // mid-stream
    await eventually(() => ann.state === "reconnecting", 3000, "ann reconnecting");
    const buffered = ann.call<number>("add", { a: 20, b: 22 }, { timeoutMs: 15_000 }); // offline buffer

    await sleep(300);
    const fx2 = await start(fx.port);
    assert.equal(fx2.port, fx.port);
    await eventually(() => recoveries.length === 1, 15_000, "resubscription after restart");
    assert.equal(recoveries[0]?.recovered, false, "history was in memory: the client must say recovery failed");
    const resub = `> ["~sub",{"topic":"chat/restart","since":{"epoch":${JSON.stringify(oldEpoch)},"seq":3}}`;
    assert.ok(framesOf(ann).some((f) => f.startsWith(resub)), `expected ${resub}…`);
    assert.notEqual(recoveries[0]?.epoch, oldEpoch, "a new epoch");
    assert.equal(sub.epoch, recoveries[0]?.epoch);
    assert.equal(closes[0]?.willReconnect, true);
    assert.equal(await buffered, 42, "the buffered request went out after the restart");

    await eventually(() => bob.state === "ready", 15_000, "bob back");
    await eventually(() => bob.subscription("chat/restart")?.state === "active", 5000, "bob resubscribed");
    await bob.publish("chat/restart", 4);
    await eventually(() => got.length === 4, 3000, "publication in the new epoch");
    assert.deepEqual(got, [1, 2, 3, 4]);
  });

  it("kicked by an admin (4503): closed, no reconnect, and the reason is reported", async () => {
    const fx = await start();
    const root = client(fx, "root", { namespace: "admin" });
    const kim = client(fx, "kim");
    await Promise.all([root.connect(), kim.connect()]);
    const closed = next<CloseInfo>((l) => kim.on("close", l));
    await root.call("kick", { user: "kim" });
    const info = await closed;
    assert.equal(info.code, 4503);
    assert.equal(info.willReconnect, false);
    assert.equal(kim.state, "closed");
    await sleep(300);
    assert.equal(kim.state, "closed");
    await assert.rejects(kim.call("echo"), { code: "DISCONNECTED" });
  });

  it("a 4th device evicts the oldest (4502): it stops, the others stay", async () => {
    const fx = await start();
    const devices = [client(fx, "lea"), client(fx, "lea"), client(fx, "lea")];
    for (const d of devices) await d.connect();
    const oldest = devices[0] as SwitchboardClient;
    const closed = next<CloseInfo>((l) => oldest.on("close", l));
    const fourth = client(fx, "lea");
    await fourth.connect();
    const info = await closed;
    assert.equal(info.code, 4502);
    assert.equal(info.willReconnect, false);
    assert.equal(oldest.state, "closed");
    for (const d of [...devices.slice(1), fourth]) assert.equal(d.state, "ready");
  });
});
