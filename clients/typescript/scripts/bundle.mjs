// Browser bundles of the client: dist/switchboard.esm.js (ES module) and
// dist/switchboard.iife.js (a global `Switchboard`), each with a source map.
import { build } from "esbuild";

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
]);
