import { setTimeout as sleep } from "node:timers/promises";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, DEFAULT_TENANT_ID, revokeApiKey } from "../src/auth/api-keys.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { graphql, operationText } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const JWT_SECRET = "a-shared-hs256-secret-of-at-least-32-chars";
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { id status } } }`);
const bearer = (secret: string) => `Bearer ${secret}`;

/** What `promise` gave within `ms`, or "still open". */
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, sleep(ms).then(() => "still open" as const)]);

/** A graphql-ws subscription to a waiting video's events (open until its credential fails). */
async function openWs(t: TestApp, authorization: string, videoId: string) {
  const client = t.wsClient(authorization);
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    client.on("closed", (e) => resolve(e as never)),
  );
  await new Promise((resolve, reject) => {
    client.subscribe(
      { query: operationText(EVENTS), variables: { id: videoId } },
      { next: resolve, error: reject, complete: () => {} },
    );
  });
  return { closed };
}

/**
 * A subscription over SSE, as GraphiQL and fetch-based clients run it; resolves `ended` with every event once the
 * server ends it.
 */
async function openSse(t: TestApp, authorization: string, videoId: string) {
  const res = await fetch(`${t.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", authorization },
    body: JSON.stringify({ query: operationText(EVENTS), variables: { id: videoId } }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; data: any }[] = [];
  let first!: () => void;
  const firstEvent = new Promise<void>((resolve) => (first = resolve));
  const ended = (async () => {
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buffer += value;
      for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const event = /^event: ?(.*)$/m.exec(block)?.[1];
        if (!event) continue;
        const data = /^data: ?(.*)$/m.exec(block)?.[1];
        events.push({ event, data: data ? JSON.parse(data) : null });
        first();
      }
    }
  })();
  await firstEvent;
  return { ended, cancel: () => reader.cancel() };
}

async function newKey(t: TestApp, name: string, expiresAt?: Date) {
  return createApiKey(t.app.services.db, { tenantId: DEFAULT_TENANT_ID, name, scopes: ["videos:read"], expiresAt });
}

describe("a revoked key ends its live subscriptions at once (NOTIFY), not only at the next re-check", () => {
  let t: TestApp;
  let videoId: string;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { AUTH_RECHECK_SECONDS: "3600" } });
    videoId = (await createUpload(t, "watched")).id;
  });
  afterAll(() => t?.stop());

  it("graphql-ws: the connection closes with 4403 and the reason; another key's connection stays open", async () => {
    const revoked = await newKey(t, "ws revoked");
    const kept = await newKey(t, "ws kept");
    const { closed } = await openWs(t, bearer(revoked.secret), videoId);
    const { closed: keptClosed } = await openWs(t, bearer(kept.secret), videoId);
    await revokeApiKey(t.app.services.db, revoked.key.id);
    expect(await within(closed, 5000)).toMatchObject({ code: 4403, reason: expect.stringContaining("revoked") });
    expect(await within(keptClosed, 1000)).toBe("still open");
  });

  it("SSE: the stream ends with an UNAUTHENTICATED error", async () => {
    const key = await newKey(t, "sse revoked");
    const stream = await openSse(t, bearer(key.secret), videoId);
    await revokeApiKey(t.app.services.db, key.key.prefix);
    const events = await within(stream.ended, 5000);
    if (events === "still open") await stream.cancel();
    expect(events).not.toBe("still open");
    const last = (events as { event: string; data: any }[]).filter((e) => e.event === "next").at(-1)!;
    expect(last.data.errors[0]).toMatchObject({
      message: expect.stringContaining("revoked"),
      extensions: { code: "UNAUTHENTICATED" },
    });
  });
});

describe("live subscriptions re-check their credential every AUTH_RECHECK_SECONDS", () => {
  let t: TestApp;
  let videoId: string;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { AUTH_RECHECK_SECONDS: "1", JWT_SECRET } });
    videoId = (await createUpload(t, "watched")).id;
  });
  afterAll(() => t?.stop());

  it("graphql-ws: a JWT whose exp passes mid-stream closes the connection with 4403", async () => {
    const token = await new SignJWT({ tenant_id: "default" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const { closed } = await openWs(t, bearer(token), videoId);
    expect(await within(closed, 6000)).toMatchObject({ code: 4403, reason: expect.stringContaining("expired") });
  });

  it("SSE: a key revoked in the database without a notification, or expiring mid-stream, ends the stream", async () => {
    const revoked = await newKey(t, "revoked behind our back");
    const expiring = await newKey(t, "expiring", new Date(Date.now() + 2000));
    const streams = [
      await openSse(t, bearer(revoked.secret), videoId),
      await openSse(t, bearer(expiring.secret), videoId),
    ];
    await t.app.services.db.apiKey.update({ where: { id: revoked.key.id }, data: { revokedAt: new Date() } });
    for (const [stream, reason] of [
      [streams[0]!, "revoked"],
      [streams[1]!, "expired"],
    ] as const) {
      const events = await within(stream.ended, 6000);
      if (events === "still open") await stream.cancel();
      expect(events, reason).not.toBe("still open");
      const last = (events as { event: string; data: any }[]).filter((e) => e.event === "next").at(-1)!;
      expect(last.data.errors[0]).toMatchObject({
        message: expect.stringContaining(reason),
        extensions: { code: "UNAUTHENTICATED" },
      });
    }
  });
});
