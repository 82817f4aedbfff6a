/**
 * The standalone server embeds a copy of the minified browser bundle
 * (crates/switchboard-server/assets/switchboard.iife.min.js, and its source map) for its demo
 * page. This test runs after `npm run build` and fails when that copy is stale.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { it } from "node:test";

for (const file of ["switchboard.iife.min.js", "switchboard.iife.min.js.map"]) {
  it(`the server's embedded ${file} is the current build`, () => {
    const built = readFileSync(resolve(process.cwd(), "dist", file), "utf8");
    const embedded = readFileSync(resolve(process.cwd(), "../../crates/switchboard-server/assets", file), "utf8");
    assert.ok(
      built === embedded,
      `crates/switchboard-server/assets/${file} is stale: after \`npm run build\` in ` +
        `clients/typescript, copy dist/${file} there`,
    );
  });
}
