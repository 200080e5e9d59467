// Bundle the web app into ../static/dist with esbuild: ES modules, code-split so that the
// player (hls.js) and the chart (uPlot) load only on the pages that use them, hashed file
// names (served as immutable), and manifest.json naming the entry files for the page shell.
// Swagger UI's prebuilt files (swagger-ui-dist) are copied beside them for /docs, with hashed
// names too, so that the API docs need nothing from the internet.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
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
// Swagger UI for /docs: its standalone bundle, stylesheet and icon, under names the manifest
// gives; the licence files keep the names the bundle's banner points at.
const swagger = path.join(here, "node_modules", "swagger-ui-dist");
const swaggerFiles = {
  "swagger-ui.js": "swagger-ui-bundle.js",
  "swagger-ui.css": "swagger-ui.css",
  "swagger-ui-favicon.png": "favicon-32x32.png",
};
for (const [name, source] of Object.entries(swaggerFiles)) {
  let content = await readFile(path.join(swagger, source));
  if (source.endsWith(".css")) {
    // The source map is not copied: drop the comment that would ask for it.
    content = Buffer.from(content.toString("utf8").replace(/\/\*# sourceMappingURL=\S+ ?\*\/\s*$/, ""));
  }
  const hash = createHash("sha256").update(content).digest("hex").slice(0, 8).toUpperCase();
  const [stem, extension] = [name.slice(0, name.lastIndexOf(".")), name.slice(name.lastIndexOf("."))];
  manifest[name] = `${stem}-${hash}${extension}`;
  await writeFile(path.join(outdir, manifest[name]), content);
}
await copyFile(
  path.join(swagger, "swagger-ui-bundle.js.LICENSE.txt"),
  path.join(outdir, "swagger-ui-bundle.js.LICENSE.txt"),
);
await copyFile(path.join(swagger, "LICENSE"), path.join(outdir, "swagger-ui-LICENSE.txt"));
await copyFile(path.join(swagger, "NOTICE"), path.join(outdir, "swagger-ui-NOTICE.txt"));

await writeFile(path.join(outdir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`built ${Object.keys(result.metafile.outputs).length} files into ${outdir}`);
