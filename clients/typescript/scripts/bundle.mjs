// Completes `npm run build` after tsc has written dist/esm (ES modules) and dist/cjs (CommonJS):
// - dist/cjs/package.json marks that folder CommonJS (the package itself is "type": "module");
// - browser bundles: dist/switchboard.esm.js (ES module, the `@switchboard/client/browser`
//   entry point, typed by dist/switchboard.esm.d.ts), dist/switchboard.esm.min.js, and
//   dist/switchboard.iife.js and dist/switchboard.iife.min.js (a global `Switchboard`), each
//   with a source map. The standalone server's demo page embeds switchboard.iife.min.js.
import { writeFileSync } from "node:fs";
import { build } from "esbuild";

writeFileSync("dist/cjs/package.json", `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`);
writeFileSync(
  "dist/switchboard.esm.d.ts",
  "// Types of the browser bundle switchboard.esm.js: the same API as the package's main entry point.\n" +
    'export * from "./esm/index.js";\n',
);

const common = {
  entryPoints: ["src/index.ts"],
  bundle: true,
  target: ["es2020"],
  platform: "browser",
  sourcemap: true,
  legalComments: "none",
  logLevel: "warning",
};

await Promise.all([
  build({ ...common, format: "esm", outfile: "dist/switchboard.esm.js" }),
  build({ ...common, format: "iife", globalName: "Switchboard", outfile: "dist/switchboard.iife.js" }),
  build({ ...common, format: "esm", minify: true, outfile: "dist/switchboard.esm.min.js" }),
  build({ ...common, format: "iife", globalName: "Switchboard", minify: true, outfile: "dist/switchboard.iife.min.js" }),
]);
