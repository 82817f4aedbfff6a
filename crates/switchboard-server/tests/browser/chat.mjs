// Two Chromium contexts (Debian's chromium via playwright-core from clients/typescript) open the
// development chat served at `/` by the switchboard binary, chat in a room, see each other's
// presence and availability, and exchange a direct message.
// Usage: node chat.mjs HOST:PORT REPO_ROOT
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [addr, repo] = process.argv.slice(2);
const require = createRequire(join(repo, "clients/typescript/package.json"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  async function open(name) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`[${name}] ${e.message}`));
    await page.goto(`http://${addr}/`);
    await page.fill("#name", name);
    await page.click("#loginform button");
    await page.waitForFunction(() => document.getElementById("state").textContent === "ready");
    await page.waitForSelector("#login.hidden", { state: "attached" });
    return page;
  }
  const ada = await open("ada");
  const bob = await open("bob");

  // The live connection counter and the room presence show both.
  await ada.waitForFunction(() => document.getElementById("online").textContent === "2");
  await bob.waitForFunction(() => document.querySelectorAll("#presence li").length === 2);

  // Room chat.
  await ada.fill("#text", "hello bob");
  await ada.press("#text", "Enter");
  await bob.waitForFunction(() => document.getElementById("log").textContent.includes("hello bob"));
  await ada.waitForFunction(() => document.getElementById("log").textContent.includes("hello bob"));

  // A direct message: bob clicks ada in the directory.
  await bob.click('#directory li[data-alias="ada"]');
  await bob.fill("#text", "psst");
  await bob.press("#text", "Enter");
  await ada.waitForFunction(() => document.getElementById("log").textContent.includes("psst"));

  // Availability: ada goes away; bob sees it in the room's presence.
  await ada.click("#availability");
  await bob.waitForFunction(() => document.querySelectorAll("#presence .dot.away").length === 1);

  // Another room.
  await ada.fill("#roomname", "games");
  await ada.press("#roomname", "Enter");
  await ada.waitForFunction(() => document.getElementById("title").textContent === "# games");
  await bob.waitForFunction(() => document.querySelectorAll("#presence li").length === 1);
  // Kept where the test run keeps its artifacts (the repository's artifacts/ by default).
  const artifacts = process.env.SWITCHBOARD_ARTIFACTS ?? join(repo, "artifacts");
  mkdirSync(artifacts, { recursive: true });
  await ada.screenshot({ path: join(artifacts, "switchboard-server-demo-ada.png") });
  await bob.screenshot({ path: join(artifacts, "switchboard-server-demo-bob.png") });
  if (errors.length > 0) throw new Error("page errors: " + errors.join("; "));
  console.log("browser chat ok");
} catch (e) {
  console.error(e);
  console.error(errors.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
