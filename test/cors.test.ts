import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnv } from "../src/config.ts";
import { ADMIN_AUTH } from "./support/auth.ts";
import { startTestApp, type TestApp } from "./support/app.ts";

const QUERY = JSON.stringify({ query: "{ webhookEndpoints { id } }" });

function preflight(t: TestApp, origin: string) {
  return fetch(`${t.url}/graphql`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
}

function post(t: TestApp, origin: string) {
  return fetch(`${t.url}/graphql`, {
    method: "POST",
    headers: { origin, "content-type": "application/json", ...ADMIN_AUTH },
    body: QUERY,
  });
}

describe("CORS on /graphql: bearer credentials need no credentials mode", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
  });
  afterAll(() => t?.stop());

  it("by default (CORS_ORIGINS=*) any origin may call it, never with Allow-Credentials", async () => {
    const evil = "https://evil.example";
    const pre = await preflight(t, evil);
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe(evil);
    expect(pre.headers.get("access-control-allow-credentials")).toBeNull();
    expect(pre.headers.get("access-control-allow-methods")).toBe("GET, POST");
    expect(pre.headers.get("access-control-allow-headers")).toBe("authorization, content-type");
    const res = await post(t, evil);
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(evil);
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    expect(res.headers.get("vary")).toMatch(/Origin/);
  });
});

describe("CORS on /graphql limited to CORS_ORIGINS", () => {
  let t: TestApp;
  const app = "https://app.example.com";
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { CORS_ORIGINS: `${app}, https://admin.example.com` } });
  });
  afterAll(() => t?.stop());

  it("answers a listed origin without credentials mode, and gives any other origin no CORS headers", async () => {
    for (const res of [await preflight(t, app), await post(t, app)]) {
      expect(res.headers.get("access-control-allow-origin")).toBe(app);
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    }
    for (const origin of ["https://evil.example", "null", "https://app.example.com.evil.example"]) {
      for (const res of [await preflight(t, origin), await post(t, origin)]) {
        expect(res.headers.get("access-control-allow-origin"), origin).toBeNull();
        expect(res.headers.get("access-control-allow-credentials"), origin).toBeNull();
      }
    }
  });

  it("refuses a CORS_ORIGINS entry that is not an origin at start", () => {
    for (const value of ["https://app.example.com/path", "app.example.com", "https://*.example.com", "null"]) {
      expect(() => loadEnv({ CORS_ORIGINS: value }), value).toThrow(/CORS_ORIGINS/);
    }
  });
});
