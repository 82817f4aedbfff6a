/**
 * The package README only points at files that exist in the repository (it is read on GitHub
 * and in the repository; a link to a file outside it, such as a private `shared/` copy of the
 * protocol, is a dead end for every reader).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { it } from "node:test";
import { packageDir } from "../support/fixture.js";

it("the README's relative links resolve to files inside the repository", () => {
  const readme = readFileSync(resolve(packageDir, "README.md"), "utf8");
  const repo = resolve(packageDir, "../..");
  const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);
  const local = links.filter((l) => !/^[a-z]+:/i.test(l) && !l.startsWith("#"));
  assert.ok(local.includes("../../docs/protocol.md"), "the README links the protocol guide");
  for (const link of local) {
    const target = resolve(packageDir, link.split("#")[0] as string);
    assert.ok(!relative(repo, target).startsWith(".."), `${link} points outside the repository`);
    assert.ok(existsSync(target), `${link} does not exist`);
  }
  assert.doesNotMatch(readme, /shared\/protocol\.md/, "the protocol is docs/protocol.md in this repository");
});

it("the README's own anchors exist", () => {
  const readme = readFileSync(resolve(packageDir, "README.md"), "utf8");
  const slug = (h: string) => h.trim().toLowerCase().replace(/[^\p{L}\p{N} -]/gu, "").replace(/ /g, "-");
  const anchors = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));
  for (const [, anchor] of readme.matchAll(/\]\(#([^)]+)\)/g)) assert.ok(anchors.has(anchor as string), `#${anchor} has no heading`);
});
