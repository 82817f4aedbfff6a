/**
 * The standalone server embeds a copy of the browser bundle (crates/switchboard-server/assets)
 * for its demo page. This test runs after `npm run build` and fails when that copy is stale.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { it } from "node:test";

it("the server's embedded bundle is the current build", () => {
  const built = readFileSync(resolve(process.cwd(), "dist/switchboard.iife.js"), "utf8");
  const embedded = readFileSync(
    resolve(process.cwd(), "../../crates/switchboard-server/assets/switchboard.iife.js"),
    "utf8",
  );
  assert.ok(
    built === embedded,
    "crates/switchboard-server/assets/switchboard.iife.js is stale: after `npm run build` in " +
      "clients/typescript, copy dist/switchboard.iife.js there",
  );
});
