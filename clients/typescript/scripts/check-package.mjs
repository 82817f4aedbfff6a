// Checks what `npm pack` produces, i.e. what a user installs (run after `npm run build`):
// 1. the file list: every entry point of `exports` is there, with its types, and nothing else
//    (no tests, build output, configuration or scripts);
// 2. @arethetypeswrong/cli on the tarball: the types resolve, in the right module format, for
//    every entry point under node10, node16 (from CommonJS and from ESM) and bundlers;
// 3. publint on the tarball (warnings count as errors).
// Exits non-zero on the first failure. The tarball is left in build/pack/.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const bin = (name) => join("node_modules", ".bin", name);
const run = (cmd, args) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
const fail = (message) => {
  console.error(`check-package: ${message}`);
  process.exit(1);
};

const dest = join("build", "pack");
rmSync(dest, { recursive: true, force: true });
mkdirSync(dest, { recursive: true });
const [packed] = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dest]));
const tarball = join(dest, packed.filename);
const files = new Set(packed.files.map((f) => f.path));

// 1. The file list.
const allowed = [
  /^package\.json$/,
  /^README\.md$/,
  /^src\/[a-z-]+\.ts$/,
  /^dist\/(esm|cjs)\/[a-z-]+\.(js|d\.ts)(\.map)?$/,
  /^dist\/cjs\/package\.json$/,
  /^dist\/switchboard\.(esm|esm\.min|iife|iife\.min)\.js(\.map)?$/,
  /^dist\/switchboard\.esm\.d\.ts$/,
];
const unexpected = [...files].filter((f) => !allowed.some((re) => re.test(f)));
if (unexpected.length > 0) fail(`unexpected files in the package: ${unexpected.join(", ")}`);

const pkg = JSON.parse(readFileSync("package.json", "utf8"));
const targets = [];
const collect = (value) => {
  if (typeof value === "string") targets.push(value.replace(/^\.\//, ""));
  else for (const v of Object.values(value)) collect(v);
};
collect(pkg.exports);
for (const field of ["main", "module", "types"]) targets.push(pkg[field].replace(/^\.\//, ""));
const sources = readdirSync("src").filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3));
for (const name of sources) {
  targets.push(`src/${name}.ts`);
  for (const dir of ["esm", "cjs"]) targets.push(`dist/${dir}/${name}.js`, `dist/${dir}/${name}.d.ts`);
}
targets.push(
  "dist/cjs/package.json",
  "dist/switchboard.iife.js",
  "dist/switchboard.iife.min.js",
  "dist/switchboard.esm.min.js",
  "README.md",
);
const missing = [...new Set(targets)].filter((t) => !files.has(t));
if (missing.length > 0) fail(`missing from the package: ${missing.join(", ")}`);
console.log(`check-package: ${packed.filename}: ${files.size} files, ${packed.size} bytes packed; the list is as expected`);

// 2. Are the types wrong? (exits non-zero when they are)
try {
  run(bin("attw"), [tarball, "--format", "table-flipped", "--no-emoji", "--no-color"]);
  console.log("check-package: attw: no problems");
} catch (err) {
  fail(`attw found problems:\n${err.stdout ?? err}`);
}

// 3. publint, strict.
try {
  const out = run(bin("publint"), ["run", tarball, "--strict"]);
  if (!/All good/.test(out)) fail(`publint:\n${out}`);
  console.log("check-package: publint: all good");
} catch (err) {
  fail(`publint found problems:\n${err.stdout ?? err}`);
}
