/**
 * The package as a user gets it: `npm pack`, then `npm install` of that tarball (offline: the
 * package has no runtime dependency) into a scratch project, which loads it with `require` and
 * with `import`, both entry points (`@switchboard/client` and `@switchboard/client/browser`),
 * talks to a server through each, and type-checks against it as CommonJS and as ESM.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WebSocketServer } from "ws";
import { packageDir } from "../support/fixture.js";

function exec(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { cwd, timeout: 60_000, env: { ...process.env, npm_config_update_notifier: "false" } }, (err, out, errOut) =>
      err === null ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")}: ${err.message}\n${out}\n${errOut}`)),
    ),
  );
}

describe("the packed package, installed", { timeout: 120_000 }, () => {
  let scratch: string;
  let server: WebSocketServer;
  let url: string;
  const wsPath = join(packageDir, "node_modules", "ws", "index.js");

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), "switchboard-client-install-"));
    await exec("npm", ["pack", "--pack-destination", scratch, "--silent"], packageDir);
    const tarball = readdirSync(scratch).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball !== undefined, "npm pack wrote a tarball");
    writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch", private: true, version: "1.0.0" }));
    await exec(
      "npm",
      ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--cache", join(scratch, ".npm"), join(scratch, tarball)],
      scratch,
    );

    // A server that welcomes anyone and echoes.
    server = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/ws" });
    await new Promise((r) => server.once("listening", r));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`;
    server.on("connection", (ws) =>
      ws.on("message", (data) => {
        const [type, payload, id] = JSON.parse(String(data)) as [string, unknown, number];
        if (type === "~hello") ws.send(JSON.stringify(["~ok", { conn: "c1", user: "ann", ns: "main", data: null, heartbeat: 0 }, id]));
        else if (type === "echo") ws.send(JSON.stringify(["~ok", payload, id]));
      }),
    );
  });

  after(async () => {
    for (const ws of server?.clients ?? []) ws.terminate();
    await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)));
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  });

  it("installs only what a user needs", async () => {
    const listed = await exec("npm", ["ls", "--all", "--parseable"], scratch);
    const deps = listed.trim().split("\n").slice(1);
    assert.deepEqual(deps.map((d) => d.slice(d.indexOf("node_modules"))), ["node_modules/@switchboard/client"], "no runtime dependency");
  });

  it("require() works: both entry points, a real connection through each", async () => {
    writeFileSync(
      join(scratch, "use.cjs"),
      `const main = require("@switchboard/client");
const browser = require("@switchboard/client/browser");
const WebSocket = require(${JSON.stringify(wsPath)});
(async () => {
  const out = { resolved: require.resolve("@switchboard/client").replace(/\\\\/g, "/").split("node_modules/")[1] };
  for (const [name, m] of [["main", main], ["browser", browser]]) {
    const c = new m.SwitchboardClient({ url: process.argv[2], WebSocket, identity: { user: "ann" } });
    await c.connect();
    out[name] = await c.call("echo", { from: name });
    await c.close();
    out[name + "Error"] = new m.SwitchboardError("X", "y") instanceof Error;
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    const out = JSON.parse(await exec(process.execPath, ["use.cjs", url], scratch)) as Record<string, unknown>;
    assert.deepEqual(out, {
      resolved: "@switchboard/client/dist/cjs/index.js",
      main: { from: "main" },
      mainError: true,
      browser: { from: "browser" },
      browserError: true,
    });
  });

  it("import works: both entry points, a real connection through each", async () => {
    writeFileSync(
      join(scratch, "use.mjs"),
      `import * as main from "@switchboard/client";
import * as browser from "@switchboard/client/browser";
import WebSocket from ${JSON.stringify(wsPath)};
const out = { resolved: import.meta.resolve("@switchboard/client").split("node_modules/")[1], browserFile: import.meta.resolve("@switchboard/client/browser").split("node_modules/")[1] };
for (const [name, m] of [["main", main], ["browser", browser]]) {
  const c = new m.SwitchboardClient({ url: process.argv[2], WebSocket, identity: { user: "ann" } });
  await c.connect();
  out[name] = await c.call("echo", { from: name });
  await c.close();
}
console.log(JSON.stringify(out));
`,
    );
    const out = JSON.parse(await exec(process.execPath, ["use.mjs", url], scratch)) as Record<string, unknown>;
    assert.deepEqual(out, {
      resolved: "@switchboard/client/dist/esm/index.js",
      browserFile: "@switchboard/client/dist/switchboard.esm.js",
      main: { from: "main" },
      browser: { from: "browser" },
    });
  });

  it("is typed for TypeScript users, from CommonJS and from ESM, at every entry point", async () => {
    const use = (imp: string) => `${imp}
const client = new SwitchboardClient({ url: "ws://localhost/ws", identity: { user: "ann" } });
const sum: Promise<number> = client.call<number>("add", { a: 1, b: 2 });
const err: SwitchboardError = new SwitchboardError("TEAPOT", "I'm a teapot");
const state: ClientState = client.state;
void sum; void err; void state;
`;
    writeFileSync(join(scratch, "types.cts"), use(`import { SwitchboardClient, SwitchboardError, type ClientState } from "@switchboard/client";`));
    writeFileSync(join(scratch, "types-browser.cts"), use(`import { SwitchboardClient, SwitchboardError, type ClientState } from "@switchboard/client/browser";`));
    writeFileSync(join(scratch, "types.mts"), use(`import { SwitchboardClient, SwitchboardError, type ClientState } from "@switchboard/client";`));
    writeFileSync(join(scratch, "types-browser.mts"), use(`import { SwitchboardClient, SwitchboardError, type ClientState } from "@switchboard/client/browser";`));
    writeFileSync(
      join(scratch, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, types: [], lib: ["es2022"] },
        files: ["types.cts", "types-browser.cts", "types.mts", "types-browser.mts"],
      }),
    );
    const tsc = join(packageDir, "node_modules", ".bin", "tsc");
    await exec(tsc, ["-p", "tsconfig.json"], scratch); // rejects with the diagnostics on a type error
    writeFileSync(join(scratch, "wrong.mts"), `import { SwitchboardClient } from "@switchboard/client";\nnew SwitchboardClient({ url: 42 });\n`);
    writeFileSync(join(scratch, "tsconfig.wrong.json"), JSON.stringify({ extends: "./tsconfig.json", files: ["wrong.mts"] }));
    await assert.rejects(exec(tsc, ["-p", "tsconfig.wrong.json"], scratch), /TS2322/, "the types do check");
  });
});
