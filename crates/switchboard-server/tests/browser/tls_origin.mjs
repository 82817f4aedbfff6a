// Debian's Chromium (via playwright-core from clients/typescript) opens the development chat
// over https, trusting the test CA through the NSS database in $HOME/.pki/nssdb (set up by the
// Rust test), logs in over wss; then a page of another origin (served here, on another port)
// tries to open the same WebSocket endpoint and must fail.
// Usage: node tls_origin.mjs HOST:PORT REPO_ROOT   (HOST is `localhost`, the certificate's name)
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";

const [addr, repo] = process.argv.slice(2);
const require = createRequire(join(repo, "clients/typescript/package.json"));
const { chromium } = require("playwright-core");

// The other origin: a page that tries the endpoint and reports what happened.
const other = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end(`<!doctype html><script>
    window.result = new Promise((resolve) => {
      const ws = new WebSocket("wss://${addr}/ws");
      ws.onopen = () => resolve("open");
      ws.onerror = () => resolve("refused");
      ws.onclose = (e) => resolve("closed " + e.code);
    });
  </script>`);
});
await new Promise((resolve) => other.listen(0, "127.0.0.1", resolve));
const otherUrl = `http://127.0.0.1:${other.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const context = await browser.newContext();
  // The demo page over https: the certificate must verify (no ignoreHTTPSErrors anywhere).
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  const response = await page.goto(`https://${addr}/`);
  if (!response.ok()) throw new Error(`https page: ${response.status()}`);
  const security = await response.securityDetails();
  console.log(`tls: ${security?.protocol}, issuer ${security?.issuer}`);
  await page.fill("#name", "ada");
  await page.click("#join");
  await page.waitForFunction(() => document.getElementById("connection").dataset.state === "ready");
  console.log("demo page over https: ready");

  // Another origin cannot open the endpoint.
  const foreign = await context.newPage();
  await foreign.goto(otherUrl);
  const result = await foreign.evaluate(() => window.result);
  console.log(`other origin: ${result}`);
  if (result === "open") throw new Error("a page of another origin opened the WebSocket endpoint");
  if (errors.length > 0) throw new Error("page errors: " + errors.join("; "));
  console.log("browser tls ok");
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
  other.close();
}
