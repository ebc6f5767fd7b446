import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Rollup } from "vite";
import { ANALYTICS_SCRIPT_FILE } from "../src/analytics/script.ts";
import { CONSOLE_DIST } from "../src/http/console.ts";
import { precompressDir } from "../src/http/content-encoding.ts";
import { GRAPHIQL_MANIFEST, type GraphiQLAssets } from "../src/http/graphiql.ts";

const CONSOLE_ROOT = fileURLToPath(new URL(".", import.meta.url));

/**
 * Builds the console with Vite: hashed files under `dist/static/` (cached for a year by the API),
 * GraphiQL's files among them (console/graphiql/, served by src/http/graphiql.ts), each text file with a brotli and a gzip copy
 * beside it (`.br`, `.gz`) that the API sends to browsers that accept them, and `dist/index.html`
 * (never cached). False when the sources are absent (a Docker stage that has only package.json).
 */
export async function buildConsole(): Promise<boolean> {
  if (!existsSync(`${CONSOLE_ROOT}index.html`)) return false;
  await build({
    root: CONSOLE_ROOT,
    configFile: false,
    logLevel: "warn",
    base: "/",
    // Preact's automatic JSX runtime; the TypeScript side is in console/tsconfig.json.
    oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
    build: {
      outDir: CONSOLE_DIST,
      emptyOutDir: true,
      assetsDir: "static",
      // No inline scripts or data: URLs, so the Content-Security-Policy can stay strict.
      assetsInlineLimit: 0,
      modulePreload: { polyfill: false },
      sourcemap: false,
      // hls.js alone is about 570 kB; it is its own chunk, loaded with the first player.
      chunkSizeWarningLimit: 700,
      target: "es2022",
    },
  });
  // The standalone beacon script: the player's beacon module alone, one file any page may load.
  await build({
    root: CONSOLE_ROOT,
    configFile: false,
    logLevel: "warn",
    build: {
      outDir: path.dirname(ANALYTICS_SCRIPT_FILE),
      emptyOutDir: false,
      sourcemap: false,
      target: "es2020",
      lib: {
        entry: `${CONSOLE_ROOT}src/analytics-script.ts`,
        formats: ["iife"],
        name: "videographAnalyticsScript",
        fileName: () => path.basename(ANALYTICS_SCRIPT_FILE),
      },
    },
  });
  const graphiql = await buildGraphiQL();
  await precompressDir(`${CONSOLE_DIST}static`);
  // Last: a build is whole once this file is there.
  await writeFile(GRAPHIQL_MANIFEST, JSON.stringify(graphiql));
  return true;
}

/**
 * Builds GraphiQL (console/graphiql/main.ts: the graphiql package with React, its own build
 * because the console renders with Preact) into the console's static files, hashed, and returns
 * their names for the API's page.
 */
async function buildGraphiQL(): Promise<GraphiQLAssets> {
  const result = await build({
    root: `${CONSOLE_ROOT}graphiql`,
    configFile: false,
    logLevel: "warn",
    base: "/static/",
    build: {
      outDir: `${CONSOLE_DIST}static`,
      emptyOutDir: false,
      assetsDir: "",
      assetsInlineLimit: 0,
      modulePreload: { polyfill: false },
      sourcemap: false,
      // GraphiQL with its editors, React and graphql-js: about 1.1 MB, loaded by /graphql only.
      chunkSizeWarningLimit: 1400,
      target: "es2022",
      rollupOptions: {
        input: `${CONSOLE_ROOT}graphiql/main.ts`,
        // React's "use client" directives mean nothing in a browser bundle.
        onwarn(warning, warn) {
          if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
        },
        output: {
          entryFileNames: "graphiql-[hash].js",
          chunkFileNames: "graphiql-[name]-[hash].js",
          assetFileNames: "graphiql-[hash][extname]",
        },
      },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]) as Rollup.RollupOutput[];
  const files = outputs.flatMap((out) => out.output);
  const entry = files.find((file): file is Rollup.OutputChunk => file.type === "chunk" && file.isEntry);
  if (!entry) throw new Error("GraphiQL's build wrote no entry script");
  return {
    script: `/static/${entry.fileName}`,
    css: files.filter((file) => file.fileName.endsWith(".css")).map((file) => `/static/${file.fileName}`),
  };
}
