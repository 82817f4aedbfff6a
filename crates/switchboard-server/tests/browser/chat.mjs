// The development server's demo chat (`/`) in Debian's Chromium via playwright-core, as people
// would use it: on a laptop (1280×800) and on phones (390×844, then 360×640).
//
// Usage: node chat.mjs HOST:PORT REPO_ROOT SCREENSHOT_DIR
// Protocol with the Rust test that runs it (tests/browser.rs): this script prints `RESTART` on
// stdout when it wants the server restarted on the same address, and waits for a line
// `RESTARTED` on stdin. It prints `browser chat ok` at the end when every check passed.
//
// What it checks: history shown on joining a room; each room's log kept when switching; the
// people list grouped by user (one entry, a device count) and "N people online" counting
// people; direct messages as conversations with unread markers (and rooms' unread markers);
// timestamps; an "away" status that survives a server restart, as others and as she herself see
// it; the layout (no horizontal overflow, a chat column as wide as the screen on phones); no
// console error, page error or failed request; the page revalidated (no-cache, ETag) and its
// files gzipped with long-lived cache headers.
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [addr, repo, shots] = process.argv.slice(2);
const require = createRequire(join(repo, "clients/typescript/package.json"));
const { chromium } = require("playwright-core");
const base = `http://${addr}/`;
mkdirSync(shots, { recursive: true });

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

const problems = [];
let restarting = false;
const check = (ok, what) => {
  if (!ok) throw new Error(`check failed: ${what}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const pages = [];

/** Collects what a person would see in the console or the network panel. */
function watch(page, who) {
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    // While the server is down, Chromium logs each refused reconnection attempt; nothing else
    // may appear, ever.
    if (restarting && /WebSocket connection to .* failed/.test(m.text())) return;
    problems.push(`[${who}] console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`[${who}] page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`[${who}] HTTP ${r.status()} ${r.url()}`);
  });
  page.on("requestfailed", (r) => {
    if (restarting && r.url().startsWith("ws")) return;
    problems.push(`[${who}] request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
}

/** Opens the page in `context`; signs in as `name` (or, with null, as the name remembered). */
async function open(context, name, who) {
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  watch(page, who);
  const responses = [];
  page.on("response", (r) => responses.push(r));
  await page.goto(base);
  if (name !== null) {
    await page.fill("#name", name);
    await page.click("#join");
  }
  await page.waitForSelector("body.signed-in");
  await ready(page);
  pages.push(page);
  return { page, responses };
}

const ready = (page) => page.waitForFunction(() => document.getElementById("connection").dataset.state === "ready");
const logText = (page) => page.evaluate(() => [...document.querySelectorAll(".log:not([hidden])")].map((l) => l.innerText).join("\n"));
const waitLog = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll(".log:not([hidden]) .msg-text")].some((m) => m.textContent === t), text);
async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await waitLog(page, text);
}
async function shot(page, name) {
  // Drawers slide in: wait for their transitions to finish.
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== "running" || a.effect?.getComputedTiming().iterations === Infinity));
  await page.screenshot({ path: join(shots, `demo-${name}.png`) });
}

/** The page, its files and their headers as Chromium saw them. */
async function checkDelivery(responses) {
  const html = responses.find((r) => r.url() === base);
  check(html, "the page was loaded");
  const h = await html.allHeaders();
  check(/no-cache/.test(h["cache-control"] ?? ""), `the page is revalidated: ${h["cache-control"]}`);
  check(h.etag, "the page has an ETag");
  const bundle = responses.find((r) => /\/assets\/switchboard\.iife\.min\.[0-9a-f]+\.js$/.test(r.url()));
  check(bundle, `the minified bundle under a hashed name: ${responses.map((r) => r.url()).join(" ")}`);
  const b = await bundle.allHeaders();
  check(b["content-encoding"] === "gzip", `the bundle is gzipped: ${JSON.stringify(b)}`);
  check(/max-age=31536000/.test(b["cache-control"]) && /immutable/.test(b["cache-control"]), `the bundle is cached for long: ${b["cache-control"]}`);
  check(/Accept-Encoding/i.test(b.vary ?? ""), "Vary: Accept-Encoding");
  for (const r of responses.filter((r) => /\/assets\/demo\.[0-9a-f]+\.(js|css)$/.test(r.url()))) {
    const a = await r.allHeaders();
    check(a["content-encoding"] === "gzip" && /immutable/.test(a["cache-control"]), `${r.url()}: ${JSON.stringify(a)}`);
  }
}

/** Nothing wider than the screen; the chat column at least `minChat` wide. */
async function checkLayout(page, minChat, what) {
  const m = await page.evaluate(() => {
    const vw = document.documentElement.clientWidth;
    const top = document.querySelector(".topbar");
    const visible = [...top.children].filter((c) => c.getClientRects().length > 0);
    return {
      vw,
      scroll: document.documentElement.scrollWidth,
      bodyScroll: document.body.scrollWidth,
      chat: document.getElementById("chat").getBoundingClientRect().width,
      topOverflow: top.scrollWidth - top.clientWidth,
      outside: visible.filter((c) => c.getBoundingClientRect().right > vw + 0.5 || c.getBoundingClientRect().left < -0.5).map((c) => c.id || c.className),
      composer: document.getElementById("composer").getBoundingClientRect().bottom,
      vh: document.documentElement.clientHeight,
    };
  });
  check(m.scroll <= m.vw && m.bodyScroll <= m.vw, `${what}: no horizontal overflow (${JSON.stringify(m)})`);
  check(m.topOverflow <= 0 && m.outside.length === 0, `${what}: the header fits (${JSON.stringify(m)})`);
  check(m.chat >= minChat, `${what}: the chat column is ${m.chat}px wide, at least ${minChat} expected`);
  check(m.composer <= m.vh + 0.5, `${what}: the composer is on screen (${JSON.stringify(m)})`);
}

async function restartServer() {
  restarting = true;
  console.log("RESTART");
  const { value } = await lines.next();
  check(value === "RESTARTED", `the server restarted (${value})`);
  await Promise.all(pages.map((p) => ready(p)));
  // A connection attempt that failed while the server was down may report it a moment late:
  // give Chromium's console a moment to flush before errors count again.
  await new Promise((r) => setTimeout(r, 500));
  restarting = false;
}

try {
  // ---- a laptop ------------------------------------------------------------------------
  const desktop = { viewport: { width: 1280, height: 800 } };
  const adaContext = await browser.newContext(desktop);
  const bobContext = await browser.newContext(desktop);
  const { page: ada, responses } = await open(adaContext, "ada", "ada");
  await checkDelivery(responses);
  await checkLayout(ada, 600, "desktop");
  await say(ada, "hello from before");
  await say(ada, "anyone here?");

  // History on joining: bob sees what was said before he came, with its time.
  const { page: bob } = await open(bobContext, "bob", "bob");
  await waitLog(bob, "hello from before");
  check(await bob.locator(".log:not([hidden]) .msg.first .msg-time").count() >= 1, "timestamps on messages");
  check((await bob.locator(".log:not([hidden]) .msg-from").first().textContent()) === "ada", "the author is shown");

  // Each room keeps its log: bob opens #games, talks, goes back to #lobby and to #games again.
  await bob.fill("#room-name", "games");
  await bob.press("#room-name", "Enter");
  await bob.waitForFunction(() => document.getElementById("title").textContent === "# games");
  await say(bob, "gg in games");
  await bob.click('#rooms li[data-room="lobby"]');
  await waitLog(bob, "anyone here?");
  check(!(await logText(bob)).includes("gg in games"), "the lobby shows the lobby's log");
  await bob.click('#rooms li[data-room="games"]');
  await waitLog(bob, "gg in games");
  check(!(await logText(bob)).includes("hello from before"), "#games shows the games' log");

  // An unread marker on a room: ada talks in the lobby while bob is in #games.
  await say(ada, "lobby ping");
  await bob.waitForFunction(() => document.querySelector('#rooms li[data-room="lobby"] .unread-badge')?.textContent === "1");

  // Presence grouped by user: ada opens a second tab (same browser, remembered name).
  const { page: ada2 } = await open(adaContext, null, "ada, second tab");
  await bob.waitForFunction(() => document.querySelector('#everyone li[data-user="ada"] .devices')?.textContent.includes("2 devices"));
  check((await bob.locator("#everyone li").count()) === 2, "one entry per person: ada (two tabs) and bob");
  check((await bob.textContent("#online-count")) === "2", "2 people online, not 3 connections");
  await ada.waitForFunction(() => document.querySelector("#everyone li.self .devices")?.textContent.includes("2 devices"));

  // A direct message is a conversation with an unread marker.
  await ada.click('#everyone li[data-user="bob"]');
  await ada.waitForFunction(() => document.getElementById("title").textContent === "bob");
  await say(ada, "psst, bob");
  await bob.waitForFunction(() => document.querySelector('#conversations li[data-user="ada"] .unread-badge')?.textContent === "1");
  check(/^\(\d+\) /.test(await bob.title()), "the tab title counts unread messages");
  await ada2.waitForFunction(() => document.querySelector('#conversations li[data-user="bob"]') !== null);
  await shot(bob, "desktop-bob-unread");
  await bob.click('#conversations li[data-user="ada"]');
  await waitLog(bob, "psst, bob");
  check((await bob.locator('#conversations li[data-user="ada"] .unread-badge').count()) === 0, "read once opened");
  check(await bob.locator(".log:not([hidden]) .msg-time").count() >= 1, "timestamps on direct messages");
  await say(bob, "hey ada");
  await waitLog(ada, "hey ada");
  // Her other tab got bob's answer too (he writes to every device of hers), unread there.
  await ada2.waitForFunction(() => document.querySelector('#conversations li[data-user="bob"] .unread-badge')?.textContent === "1");

  // Away: one click, in every tab of hers, as bob sees it.
  await ada.click("#status");
  await ada.waitForFunction(() => document.getElementById("status-text").textContent === "Away");
  await ada2.waitForFunction(() => document.getElementById("status-text").textContent === "Away");
  await bob.waitForFunction(() => document.querySelector('#everyone li[data-user="ada"]')?.dataset.state === "away");
  await bob.waitForFunction(() => document.getElementById("text").disabled, null, { timeout: 5000 }).catch(() => {
    throw new Error("writing to an away person is not offered");
  });
  await shot(ada, "desktop-ada");
  await shot(bob, "desktop-bob");

  // The server restarts: everyone reconnects; ada is still away, for bob and for herself.
  await restartServer();
  await bob.waitForFunction(() => {
    const li = document.querySelector('#everyone li[data-user="ada"]');
    return li?.dataset.state === "away" && li.querySelector(".devices").textContent.includes("2 devices");
  });
  check((await bob.textContent("#online-count")) === "2", "still 2 people online after the restart");
  for (const page of [ada, ada2]) {
    check((await page.textContent("#status-text")) === "Away", "her button still says away");
    await page.waitForFunction(() => document.querySelector("#everyone li.self")?.dataset.state === "away");
  }
  await bob.click('#rooms li[data-room="lobby"]');
  await bob.waitForFunction(() => document.querySelector(".log:not([hidden]) .sys.warn")?.textContent.includes("restarted"));
  await shot(bob, "desktop-bob-after-restart");
  await shot(ada, "desktop-ada-after-restart");

  // A tablet: two columns, people in a panel; and a wide screen.
  await bob.setViewportSize({ width: 820, height: 1180 });
  await checkLayout(bob, 500, "tablet 820×1180");
  await shot(bob, "tablet-bob");
  await bob.setViewportSize({ width: 1920, height: 1080 });
  await checkLayout(bob, 1200, "wide 1920×1080");
  await bob.setViewportSize({ width: 1280, height: 800 });

  // ---- a phone -------------------------------------------------------------------------
  await say(bob, "welcome, phones");
  const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
  const carolContext = await browser.newContext(phone);
  const { page: carol, responses: carolResponses } = await open(carolContext, "carol", "carol (phone)");
  await checkDelivery(carolResponses);
  await waitLog(carol, "welcome, phones");
  await checkLayout(carol, 389, "phone 390×844");
  await say(carol, "hi from my phone");
  await waitLog(bob, "hi from my phone");
  await shot(carol, "phone-lobby");

  // Who is online, in a drawer: three people, ada away on two devices.
  await carol.click("#open-people");
  await carol.waitForFunction(() => document.getElementById("people").getBoundingClientRect().right <= innerWidth + 1 && document.getElementById("people").getBoundingClientRect().left >= 0);
  check((await carol.textContent("#online-count")) === "3", "3 people online");
  await carol.waitForFunction(() => document.querySelector('#everyone li[data-user="ada"]')?.dataset.state === "away");
  await shot(carol, "phone-people");
  await carol.click("#close-people");

  // A direct message on the phone: the menu button shows it, the drawer lists the conversation.
  await bob.click('#everyone li[data-user="carol"]');
  await say(bob, "carol, a word?");
  await carol.waitForFunction(() => !document.getElementById("nav-unread").hidden);
  await carol.click("#open-nav");
  await carol.waitForFunction(() => document.querySelector('#conversations li[data-user="bob"] .unread-badge')?.textContent === "1");
  await shot(carol, "phone-drawer");
  await carol.click('#conversations li[data-user="bob"]');
  await waitLog(carol, "carol, a word?");
  await say(carol, "sure!");
  await waitLog(bob, "sure!");
  await checkLayout(carol, 389, "phone, a conversation");
  await shot(carol, "phone-dm");

  // Rooms from the drawer.
  await carol.click("#open-nav");
  await carol.click('#rooms li[data-room="random"]');
  await carol.waitForFunction(() => document.getElementById("narrow-title").textContent === "# random");

  // The smallest phones.
  await carol.setViewportSize({ width: 360, height: 640 });
  await carol.click("#open-nav");
  await carol.click('#rooms li[data-room="lobby"]');
  await waitLog(carol, "hi from my phone");
  await checkLayout(carol, 359, "phone 360×640");
  await shot(carol, "phone-360");

  if (problems.length > 0) throw new Error("console or network problems:\n" + problems.join("\n"));
  console.log("browser chat ok");
} catch (e) {
  console.error(e);
  if (problems.length > 0) console.error(problems.join("\n"));
  for (const [i, page] of pages.entries()) await page.screenshot({ path: join(shots, `demo-failure-${i}.png`) }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
  stdin.close();
}
