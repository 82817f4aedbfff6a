/**
 * Two Chromium contexts (Debian's /usr/bin/chromium via playwright-core) load the browser
 * bundles, identify to the fixture, chat in a topic and see each other's presence.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { type Fixture, packageDir, startFixture } from "../support/fixture.js";
import { appJs, page } from "./page.js";

const artifacts = process.env["SWITCHBOARD_ARTIFACTS"] ?? resolve(packageDir, "../../artifacts");
const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";

function serve(): Promise<Server> {
  const types: Record<string, string> = { ".js": "text/javascript", ".map": "application/json", ".html": "text/html" };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const send = (status: number, type: string, text: string | Buffer) => {
      res.writeHead(status, { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store" });
      res.end(text);
    };
    if (path === "/esm.html") return send(200, "text/html", page("esm"));
    if (path === "/iife.html") return send(200, "text/html", page("iife"));
    if (path === "/app.js") return send(200, "text/javascript", appJs);
    const m = /^\/dist\/(switchboard\.(esm|iife)\.js(\.map)?)$/.exec(path);
    if (m !== null) return send(200, types[extname(path)] ?? "text/plain", readFileSync(join(packageDir, "dist", m[1] as string)));
    send(404, "text/plain", "not found");
  });
  return new Promise((res) => server.listen(0, "127.0.0.1", () => res(server)));
}

describe("browser (chromium + fixture)", { timeout: 180_000 }, () => {
  let fx: Fixture;
  let http: Server;
  const contexts: BrowserContext[] = [];
  const profiles: string[] = [];
  const logs: string[] = [];

  before(async () => {
    fx = await startFixture();
    http = await serve();
  });

  after(async () => {
    await Promise.all(contexts.map((c) => c.close().catch(() => undefined)));
    await new Promise((r) => http?.close(r));
    await fx?.stop();
    for (const dir of profiles) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * One browser context per user, each in its own Chromium with a fresh profile directory
   * (Playwright takes `--user-data-dir` only through launchPersistentContext).
   */
  async function open(bundle: "esm" | "iife", user: string): Promise<Page> {
    const profile = mkdtempSync(join(tmpdir(), "sb-chromium-"));
    profiles.push(profile);
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      viewport: { width: 1280, height: 300 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    contexts.push(context);
    const p = context.pages()[0] ?? (await context.newPage());
    p.on("console", (m) => logs.push(`[${user}] ${m.type()}: ${m.text()}`));
    p.on("pageerror", (e) => logs.push(`[${user}] pageerror: ${e.message}`));
    const { port } = http.address() as { port: number };
    await p.goto(`http://127.0.0.1:${port}/${bundle}.html`);
    await p.waitForFunction(() => (window as unknown as { sbReady?: boolean }).sbReady === true);
    await p.evaluate(([url, u]) => (window as unknown as { sbStart(url: string, user: string): Promise<string> }).sbStart(url as string, u as string), [fx.url, user]);
    return p;
  }

  const texts = (p: Page, sel: string) => p.$$eval(sel, (els) => els.map((e) => e.textContent ?? ""));

  it("two browsers chat through a topic and see each other's presence", async () => {
    try {
      const ann = await open("esm", "ann");
      const bob = await open("iife", "bob");
      assert.equal(await ann.textContent("#state"), "ready");

      // presence: each sees both connections in the topic and in the directory
      for (const p of [ann, bob]) {
        await p.waitForFunction(() => document.querySelectorAll("#presence li").length === 2, undefined, { timeout: 10_000 });
        await p.waitForFunction(() => document.querySelectorAll("#directory li").length >= 2, undefined, { timeout: 10_000 });
      }
      assert.deepEqual((await texts(ann, "#presence li")).sort(), ["ann (ann)", "bob (bob)"]);
      assert.deepEqual((await texts(bob, "#presence li")).sort(), ["ann (ann)", "bob (bob)"]);

      // messages both ways
      const say = (p: Page, text: string) => p.evaluate((t) => (window as unknown as { sbSay(t: string): Promise<unknown> }).sbSay(t), text);
      await say(ann, "hello from ann");
      await say(bob, "hi ann, bob here");
      for (const p of [ann, bob]) {
        await p.waitForFunction(() => document.querySelectorAll("#messages li").length === 2, undefined, { timeout: 10_000 });
        assert.deepEqual(await texts(p, "#messages li"), ["ann: hello from ann", "bob: hi ann, bob here"]);
      }

      // a direct message, a call and a typed error from inside the page
      await bob.evaluate(() => (window as unknown as { sbDm(a: string, t: string): Promise<unknown> }).sbDm("ann", "psst"));
      await ann.waitForFunction(() => document.querySelectorAll("#dms li").length === 1, undefined, { timeout: 10_000 });
      assert.deepEqual(await texts(ann, "#dms li"), ["bob → me: psst"]);
      assert.equal(await ann.evaluate(() => (window as unknown as { sbAdd(a: number, b: number): Promise<number> }).sbAdd(2, 3)), 5);
      assert.equal(await bob.evaluate(() => (window as unknown as { sbFail(): Promise<string> }).sbFail()), "SwitchboardError:TEAPOT:I'm a teapot");

      mkdirSync(artifacts, { recursive: true });
      await ann.screenshot({ path: join(artifacts, "typescript-browser-chat-ann.png"), fullPage: true });
      await bob.screenshot({ path: join(artifacts, "typescript-browser-chat-bob.png"), fullPage: true });

      // bob leaves: ann's presence follows
      await bob.context().close(); // the whole browser of bob goes away
      await ann.waitForFunction(() => document.querySelectorAll("#presence li").length === 1, undefined, { timeout: 10_000 });
      assert.deepEqual(await texts(ann, "#presence li"), ["ann (ann)"]);

      await ann.screenshot({ path: join(artifacts, "typescript-browser-chat-after-bob-left.png"), fullPage: true });
    } catch (e) {
      console.error(logs.join("\n"));
      throw e;
    }
  });
});
