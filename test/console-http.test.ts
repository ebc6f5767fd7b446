import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { get } from "node:http";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_DIST } from "../src/http/console.ts";
import { preferredEncoding } from "../src/http/content-encoding.ts";
import { GRAPHIQL_MANIFEST, type GraphiQLAssets } from "../src/http/graphiql.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { buildConsole } from "./support/console.ts";
import { graphql, operationText } from "./support/graphql.ts";

const run = promisify(execFile);
const VIDEOS = graphql(`{ videos(first: 1) { edges { cursor } } }`);
const TYPENAME = graphql(`{ __typename }`);

/** A GET with exactly these headers (fetch would ask for and undo compression itself): status, headers, raw body. */
function rawGet(url: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>(
    (resolve, reject) => {
      get(url, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      }).on("error", reject);
    },
  );
}

describe("the console's HTTP serving (src/http/console.ts) beside the API's routes", () => {
  let t: TestApp;
  let script: string;
  beforeAll(async () => {
    await buildConsole();
    script = (await readdir(`${CONSOLE_DIST}static`)).find((f) => /^index-.*\.js$/.test(f))!;
    t = await startTestApp({ worker: false });
  });
  afterAll(() => t?.stop());

  it.each(["/", "/upload", "/sources", "/webhooks", "/keys", "/videos", "/videos/abc123", "/watch/abc123"])(
    "GET %s answers the console's index.html, never cached, with a strict CSP",
    async (path) => {
      const res = await fetch(`${t.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      const csp = res.headers.get("content-security-policy")!;
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).toContain(path.startsWith("/watch/") ? "frame-ancestors *" : "frame-ancestors 'none'");
      const html = await res.text();
      expect(html).toContain(`/static/${script}`);
      // No inline script: every <script> has a src.
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    },
  );

  it("serves hashed files with their content type, cached for a year", async () => {
    const res = await fetch(`${t.url}/static/${script}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await res.text()).toBe(readFileSync(`${CONSOLE_DIST}static/${script}`, "utf8"));
    const css = (await readdir(`${CONSOLE_DIST}static`)).find((f) => f.endsWith(".css"))!;
    expect((await fetch(`${t.url}/static/${css}`)).headers.get("content-type")).toBe("text/css; charset=utf-8");
  });

  it("serves /favicon.ico, cached for a day, and the pages name the hashed SVG icon", async () => {
    const res = await fetch(`${t.url}/favicon.ico`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/x-icon");
    expect(res.headers.get("cache-control")).toBe("public, max-age=86400");
    const body = Buffer.from(await res.arrayBuffer());
    // An ICO header: reserved 0, type 1 (icon), one image.
    expect([...body.subarray(0, 6)]).toEqual([0, 0, 1, 0, 1, 0]);
    const html = await (await fetch(`${t.url}/`)).text();
    const icon = /<link rel="icon" href="(\/static\/favicon-[\w-]+\.svg)"/.exec(html)?.[1];
    expect(icon).toBeDefined();
    const svg = await fetch(`${t.url}${icon}`);
    expect(svg.headers.get("content-type")).toBe("image/svg+xml");
    expect(svg.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
  });

  it.each([
    "/static/..%2Findex.html",
    "/static/%2e%2e/%2e%2e/package.json",
    "/static/../../package.json",
    "/static/nothing.js",
    "/static/.hidden.js",
    "/static/index.html",
  ])("GET %s: 404, nothing outside dist/static", async (path) => {
    const res = await fetch(`${t.url}${path}`);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toContain("videograph");
  });

  it("does not shadow the API: /graphql, /health, /media, /uploads and unknown paths answer as before", async () => {
    const health = await fetch(`${t.url}/health`);
    expect(await health.json()).toEqual({ status: "ok" });
    const gql = await t.gql(VIDEOS);
    expect(gql.errors).toBeUndefined();
    expect((await fetch(`${t.url}/media/videos/nope/hls/master.m3u8`)).status).toBe(404);
    expect((await fetch(`${t.url}/uploads/nope`, { method: "PUT", body: "x" })).status).toBe(403);
    for (const path of ["/nope", "/videos/a/b", "/watch", "/index.html"]) {
      const res = await fetch(`${t.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.headers.get("content-security-policy"), path).toBeNull();
    }
    // Not GET: the console answers nothing.
    expect((await fetch(`${t.url}/`, { method: "POST", body: "{}" })).status).not.toBe(200);
  });

  it("the console's operation types (graphql-env.d.ts) are generated from the printed schema as it is", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "console-types-"));
    try {
      const output = path.join(dir, "graphql-env.d.ts");
      await run(process.execPath, [
        "node_modules/gql.tada/bin/cli.js",
        "generate-output",
        "--tsconfig",
        "console/tsconfig.json",
        "--output",
        output,
      ]);
      const committed = await readFile("console/src/graphql-env.d.ts", "utf8");
      expect(await readFile(output, "utf8"), "stale: run npm run generate").toBe(committed);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("GraphiQL comes from the npm package (no CDN) as the build's hashed files, presets the console's credential, and runs no inline script", async () => {
    const res = await fetch(`${t.url}/graphql`, { headers: { accept: "text/html" } });
    expect(res.status).toBe(200);
    const html = await res.text();
    // A small page naming its files, each served from /static/ like the console's.
    expect(html.length).toBeLessThan(4000);
    const scripts = [...html.matchAll(/<script type="module" src="(\/static\/[\w.-]+\.js)"><\/script>/g)].map(
      (m) => m[1]!,
    );
    expect(scripts).toHaveLength(1);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/https?:\/\//);
    const bundle = await (await fetch(`${t.url}${scripts[0]}`)).text();
    // (Booleans: a failing toContain would print the whole megabyte.)
    expect(/["'`]videograph\.authorization["'`]/.test(bundle), "the console's credential key").toBe(true);
    expect(bundle.includes("sessionStorage.getItem("), "reads sessionStorage").toBe(true);
    expect(bundle.includes("graphiql-container"), "GraphiQL's own code").toBe(true);
    // Its styles and every chunk it imports are same-origin files that exist.
    const styles = [...html.matchAll(/<link rel="stylesheet" href="(\/static\/[\w.-]+\.css)">/g)].map((m) => m[1]!);
    expect(styles.length).toBeGreaterThan(0);
    const imported = [...bundle.matchAll(/["'`]\.\/(graphiql-[\w.-]+\.js)["'`]/g)].map((m) => `/static/${m[1]}`);
    expect(imported.length).toBeGreaterThan(0);
    for (const file of [...styles, ...imported]) expect((await fetch(`${t.url}${file}`)).status, file).toBe(200);
    expect(
      JSON.parse(
        html
          .match(/data-options="([^"]*)"/)![1]!
          .replaceAll("&quot;", '"')
          .replaceAll("&amp;", "&"),
      ),
    ).toMatchObject({ defaultQuery: expect.stringContaining("query NewestVideos") });
    // Same origin as the console: no other site may frame it, it talks to this origin only, and no
    // inline script runs.
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self';");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    // GraphQL answers (JSON) are not given the page's policy.
    const answer = await fetch(`${t.url}/graphql?query=${encodeURIComponent(operationText(TYPENAME))}`);
    expect(answer.headers.get("content-security-policy")).toBeNull();
  });

  it("sends the console's files and GraphiQL's compressed to a browser that takes brotli or gzip", async () => {
    const graphiql = (JSON.parse(await readFile(GRAPHIQL_MANIFEST, "utf8")) as GraphiQLAssets).script;
    const files = await readdir(`${CONSOLE_DIST}static`);
    for (const name of [files.find((f) => /^hls-.*\.js$/.test(f))!, path.basename(graphiql)]) {
      const plain = await readFile(`${CONSOLE_DIST}static/${name}`);
      const br = await rawGet(`${t.url}/static/${name}`, { "accept-encoding": "gzip, deflate, br" });
      expect(br.headers["content-encoding"]).toBe("br");
      expect(br.headers.vary).toBe("accept-encoding");
      expect(Number(br.headers["content-length"])).toBe(br.body.length);
      expect(brotliDecompressSync(br.body).equals(plain)).toBe(true);
      // hls.js (578 kB) and GraphiQL's bundle (about 1 MB): under a third of it sent.
      expect(br.body.length).toBeLessThan(plain.length / 3);
      const gz = await rawGet(`${t.url}/static/${name}`, { "accept-encoding": "gzip" });
      expect(gz.headers["content-encoding"]).toBe("gzip");
      expect(gunzipSync(gz.body).equals(plain)).toBe(true);
      const refusals: Record<string, string>[] = [
        {},
        { "accept-encoding": "br;q=0, gzip;q=0" },
        { "accept-encoding": "identity" },
      ];
      for (const refused of refusals) {
        const res = await rawGet(`${t.url}/static/${name}`, refused);
        expect(res.headers["content-encoding"]).toBeUndefined();
        expect(res.body.equals(plain)).toBe(true);
      }
    }
    const page = await rawGet(`${t.url}/graphql`, { accept: "text/html", "accept-encoding": "br" });
    expect(page.headers["content-encoding"]).toBe("br");
    const plainPage = await rawGet(`${t.url}/graphql`, { accept: "text/html" });
    expect(brotliDecompressSync(page.body).equals(plainPage.body)).toBe(true);
  });

  it("reads Accept-Encoding by its weights, case-insensitively, and refuses what it does not name", () => {
    expect(preferredEncoding("gzip, deflate, br")).toBe("br");
    expect(preferredEncoding("GZIP, BR")).toBe("br");
    expect(preferredEncoding("gzip;q=0.8, br;q=0.5")).toBe("gzip");
    expect(preferredEncoding("br;q=0, gzip")).toBe("gzip");
    expect(preferredEncoding(" br ; q=0 , gzip ; q=0 ")).toBeNull();
    expect(preferredEncoding("*")).toBe("br");
    expect(preferredEncoding("*, br;q=0")).toBe("gzip");
    expect(preferredEncoding("deflate, identity")).toBeNull();
    expect(preferredEncoding("br;q=abc")).toBeNull();
    expect(preferredEncoding("")).toBeNull();
    expect(preferredEncoding(null)).toBeNull();
    expect(preferredEncoding("gzip", ["br"])).toBeNull();
    // A hostile header costs a bounded read: past 1000 characters it is not read at all.
    expect(preferredEncoding(`${",".repeat(100_000)}br`)).toBeNull();
  });
});
