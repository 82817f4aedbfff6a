/** Identification against the fixture: passwords, challenges, refusals, namespaces, codecs. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { jsonCodec, SwitchboardClient } from "../../src/index.js";
import { clientFor, dropLink, type Fixture, framesOf, sleep, startFixture } from "../support/fixture.js";

describe("identify (fixture)", { timeout: 120_000 }, () => {
  let fx: Fixture;
  const clients: SwitchboardClient[] = [];
  const make = (...args: Parameters<typeof clientFor>) => {
    const c = clientFor(...args);
    clients.push(c);
    return c;
  };
  before(async () => {
    fx = await startFixture();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await fx?.stop();
  });

  it("accepts a user with a password and returns the welcome", async () => {
    const c = make(fx, "ann");
    const w = await c.connect();
    assert.equal(w.user, "ann");
    assert.equal(w.ns, "main");
    assert.deepEqual(w.data, { hello: "ann" });
    assert.equal(w.heartbeat, 5000);
    assert.equal(typeof w.conn, "string");
    assert.equal(c.state, "ready");
    assert.deepEqual(await c.call("whoami"), { user: "ann", conn: w.conn, ns: "main" });
  });

  it("answers the challenge with the HMAC of the nonce", async () => {
    let quest: unknown;
    const c = make(fx, "bea", {
      identity: { user: "bea", challenge: true },
      onChallenge: (q) => {
        quest = q;
        const nonce = (q as { nonce: string }).nonce;
        return createHmac("sha256", "secret-bea").update(nonce).digest("hex");
      },
    });
    const w = await c.connect();
    assert.equal(w.user, "bea");
    assert.match((quest as { nonce: string }).nonce, /^[0-9a-f]+$/);
  });

  it("is refused with NOT_AUTHORIZED for a wrong challenge answer, and does not reconnect", async () => {
    const c = make(fx, "bea", { identity: { user: "bea", challenge: true }, onChallenge: () => "0000" });
    await assert.rejects(c.connect(), { code: "NOT_AUTHORIZED" });
    assert.equal(c.state, "closed");
    assert.equal(c.closeInfo?.willReconnect, false);
  });

  it("is refused with NOT_AUTHORIZED for a wrong password: kept in lastError, never retried", async () => {
    const c = make(fx, "ann", { identity: { user: "ann", password: "nope" } });
    const states: string[] = [];
    c.on("state", (s) => states.push(`${s.state}${s.error === undefined ? "" : `:${s.error.code}`}`));
    const buffered = c.call("echo", 1);
    await assert.rejects(c.connect(), (e: unknown) => (e as { code: string }).code === "NOT_AUTHORIZED");
    await assert.rejects(buffered, { code: "NOT_AUTHORIZED" });
    assert.equal(c.state, "closed");
    assert.equal(c.lastError?.code, "NOT_AUTHORIZED");
    assert.equal(c.closeInfo?.code, 4500);
    assert.deepEqual(states, ["connecting", "closed:NOT_AUTHORIZED"]);
    await sleep(300); // longer than the backoff of clientFor (50 ms): a retry would show
    assert.equal(framesOf(c).filter((f) => f.startsWith('> ["~hello"')).length, 1);
  });

  it("a wrong path is refused at the upgrade (HTTP 404): NOT_FOUND at once, never retried", async () => {
    const c = make({ url: fx.url.replace(/\/ws$/, "/nope") }, "ann");
    await assert.rejects(c.connect(), (e: unknown) => {
      assert.equal((e as { code?: string }).code, "NOT_FOUND");
      assert.match((e as Error).message, /HTTP 404/);
      return true;
    });
    assert.equal(c.state, "closed");
    assert.deepEqual(c.lastError?.data, { status: 404 });
  });

  it("an unknown subprotocol is refused at the upgrade (HTTP 400): BAD_REQUEST at once", async () => {
    const bogus = { ...jsonCodec, subprotocol: "switchboard.v9.bogus" };
    const c = make(fx, "ann", { codec: bogus });
    await assert.rejects(c.connect(), { code: "BAD_REQUEST" });
    assert.equal(c.lastError?.code, "BAD_REQUEST");
    assert.deepEqual(c.lastError?.data, { status: 400 });
  });

  it("reports NOT_FOUND for an unknown namespace", async () => {
    const c = make(fx, "ann", { namespace: "nowhere" });
    await assert.rejects(c.connect(), { code: "NOT_FOUND" });
  });

  it("identifies root in the admin namespace, which extends main and allows ~info", async () => {
    const c = make(fx, "root", { namespace: "admin" });
    const w = await c.connect();
    assert.equal(w.ns, "admin");
    assert.equal(await c.call("add", { a: 2, b: 3 }), 5);
    assert.ok((await c.info()) !== null);
    const plain = make(fx, "ann");
    await plain.connect();
    await assert.rejects(plain.info(), { code: "FORBIDDEN" });
  });

  it("refuses admin to anyone but root", async () => {
    const c = make(fx, "ann", { namespace: "admin" });
    await assert.rejects(c.connect(), { code: "NOT_AUTHORIZED" });
  });

  it("calls the identity provider (async) at every connection and refresh", async () => {
    let calls = 0;
    const c = make(fx, "cid", {
      identity: async () => {
        calls++;
        return { user: "cid", password: "pw-cid" };
      },
    });
    await c.connect();
    assert.equal(calls, 1);
    await c.refresh();
    assert.equal(calls, 2, "refresh() asks the provider too");
    dropLink(c);
    await new Promise((r) => c.once("ready", r));
    assert.equal(calls, 3, "and so does every reconnection");
  });

  it("speaks MessagePack when asked to", async () => {
    const c = make(fx, "mia", { codec: "msgpack" });
    await c.connect();
    assert.equal(await c.call("add", { a: 40, b: 2 }), 42);
    assert.deepEqual(await c.call("echo", { bytes: "é", list: [1, 2.5, null, true] }), { bytes: "é", list: [1, 2.5, null, true] });
    await assert.rejects(c.call("fail"), { code: "TEAPOT" });
  });
});
