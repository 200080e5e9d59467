// Bundle the web app into ../static/dist with esbuild: ES modules, code-split so that the
// player (hls.js) and the chart (uPlot) load only on the pages that use them, hashed file
// names (served as immutable), and manifest.json naming the entry files for the page shell.
import { build } from "esbuild";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "static", "dist");

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.js" },
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["es2020"],
  minify: true,
  sourcemap: "linked",
  entryNames: "[name]-[hash]",
  chunkNames: "chunks/[name]-[hash]",
  assetNames: "assets/[name]-[hash]",
  outdir,
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const manifest = {};
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  // Dynamic imports (the player, the chart) are entry points of their own; skip them.
  if (output.entryPoint !== "src/main.js") continue;
  manifest["app.js"] = path.basename(file);
  // The CSS imported by the entry point comes out beside it.
  if (output.cssBundle) manifest["app.css"] = path.basename(output.cssBundle);
}
await writeFile(path.join(outdir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`built ${Object.keys(result.metafile.outputs).length} files into ${outdir}`);
