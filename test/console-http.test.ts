import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_DIST } from "../src/http/console.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { buildConsole } from "./support/console.ts";

const run = promisify(execFile);

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
    const gql = await t.gql("{ videos(first: 1) { edges { cursor } } }");
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

  it("GraphiQL comes from the npm package (no CDN) and presets the console's credential", async () => {
    const res = await fetch(`${t.url}/graphql`, { headers: { accept: "text/html" } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain("YogaGraphiQL.renderYogaGraphiQL");
    expect(html).not.toMatch(/<script[^>]+src=["']https?:/);
    expect(html).not.toMatch(/unpkg\.com|jsdelivr|cdnjs/);
    expect(html).toContain('sessionStorage.getItem("videograph.authorization")');
    // Same origin as the console: no other site may frame it, and it talks to this origin only.
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    // GraphQL answers (JSON) are not given the page's policy.
    const answer = await fetch(`${t.url}/graphql?query=${encodeURIComponent("{ __typename }")}`);
    expect(answer.headers.get("content-security-policy")).toBeNull();
  });
});
