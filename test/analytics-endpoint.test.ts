import { createHmac, randomUUID } from "node:crypto";
import http from "node:http";
import { Readable } from "node:stream";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBatchBuffer, WATCH_BOUNDS } from "../src/analytics/batch-buffer.ts";
import { batchFigures, createAnalyticsIngest, UNIQUE_VIEWERS_PER_SOURCE } from "../src/analytics/ingest.ts";
import { ViewTokens } from "../src/analytics/view-tokens.ts";
import { liveViewerLatencySeconds } from "../src/metrics.ts";
import { ANALYTICS_PATHS, BEACON_LIMITS, type BeaconEvent } from "../src/shared/analytics-beacons.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const SIGNING_SECRET = "analytics-test-signing-secret-0123456789abcdef";
const PER_VIEW = 8;
const PER_CLIENT = 40;
const MAX_BODY = 4096;

const ANALYTICS = graphql(`
  query ($id: ID!, $from: DateTime!, $to: DateTime!) { video(id: $id) { analytics(from: $from, to: $to, interval: HOUR) {
    views uniqueViewers watchTimeSeconds startupTimeP50Ms startupTimeP95Ms rebufferCount rebufferSeconds rebufferRatio
    renditionSwitches failureRate completionRate topRenditions { height watchTimeSeconds share }
    timeline { at views watchTimeSeconds }
  } } }`);
const TENANT_ANALYTICS = graphql(
  `query ($from: DateTime!, $to: DateTime!) { tenantAnalytics(from: $from, to: $to) { views watchTimeSeconds } }`,
);
const TENANT_STARTUP = graphql(`
  query ($from: DateTime!, $to: DateTime!) { tenantAnalytics(from: $from, to: $to) {
    views watchTimeSeconds startupTimeP50Ms } }`);
const SET_COLLECTION = graphql(
  `mutation ($enabled: Boolean!) { setAnalyticsCollection(enabled: $enabled) { enabled } }`,
);
const COLLECTION = graphql(`{ analyticsCollection { enabled } }`);
const TITLE = graphql(`query ($id: ID!) { video(id: $id) { id title } }`);
const DELETE = graphql(`mutation ($id: ID!) { deleteVideo(id: $id) { __typename } }`);

/** Each test speaks from its own address (TRUST_PROXY_HOPS=1), so the per-client limit of one never touches another. */
let nextClient = 1;
const newClient = () => `198.51.100.${nextClient++}`;

/** Deadlocks Postgres has found in the client's database (its statistics, read afresh). */
async function deadlocksOf(client: pg.Client): Promise<number> {
  await client.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await client.query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()");
  return Number(rows[0].deadlocks);
}

/** Whether a statement of the client's database whose text is `LIKE pattern` waits for a lock. */
async function lockWaiting(client: pg.Client, pattern: string): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE NOT l.granted AND a.datname = current_database() AND a.query LIKE $1`,
    [pattern],
  );
  return rows[0].n > 0;
}

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

async function post(t: TestApp, path: string, body: unknown, client: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${t.url}${path}`, {
    method: "POST",
    // sendBeacon posts text/plain; the endpoint does not care.
    headers: { "content-type": "text/plain;charset=UTF-8", "x-forwarded-for": client, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers } satisfies Answer;
}

const startView = (t: TestApp, videoId: string, client: string, extra: Record<string, unknown> = {}) =>
  post(t, ANALYTICS_PATHS.views, { v: 1, videoId, ...extra }, client);

const sendBatch = (
  t: TestApp,
  view: { videoId: string; viewToken: string },
  seq: number,
  events: BeaconEvent[],
  client: string,
) => post(t, ANALYTICS_PATHS.beacons, { v: 1, videoId: view.videoId, viewToken: view.viewToken, seq, events }, client);

const range = () => ({
  from: new Date(Date.now() - 3600_000).toISOString(),
  to: new Date(Date.now() + 3600_000).toISOString(),
});

async function analyticsOf(t: TestApp, id: string, authorization?: string) {
  const { data, errors } = await t.gql(ANALYTICS, { id, ...range() }, authorization);
  expect(errors).toBeUndefined();
  return data.video!.analytics;
}

async function rowCounts(t: TestApp, videoId: string) {
  const [row] = await t.app.services.db.$queryRaw<Record<string, number>[]>`SELECT
    (SELECT count(*)::int FROM "AnalyticsView" WHERE "videoId" = ${videoId}::uuid) AS views,
    (SELECT count(*)::int FROM "AnalyticsHour" WHERE "videoId" = ${videoId}::uuid) AS hours,
    (SELECT count(*)::int FROM "AnalyticsHeightHour" WHERE "videoId" = ${videoId}::uuid) AS heights,
    (SELECT count(*)::int FROM "AnalyticsDailyViewer" WHERE "videoId" = ${videoId}::uuid) AS viewers`;
  return row!;
}

/**
 * The collection endpoint against a real API and Postgres: a view is started from its playback,
 * its batches land in the rollups `Video.analytics` reads, and every hostile request (another
 * video's token, a forged or expired one, oversize or malformed bodies, floods, a tenant that
 * turned collection off) is refused with a 4xx and stores nothing.
 */
describe("viewer analytics: the collection endpoint", () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      worker: false,
      env: {
        SIGNING_SECRET,
        TRUST_PROXY_HOPS: "1",
        ANALYTICS_BATCHES_PER_VIEW_PER_MINUTE: String(PER_VIEW),
        ANALYTICS_REQUESTS_PER_CLIENT_PER_MINUTE: String(PER_CLIENT),
        ANALYTICS_MAX_BODY_BYTES: String(MAX_BODY),
        ANALYTICS_VIEWERS_NOW_SECONDS: "5",
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("counts a view's batches once each in Video.analytics and tenantAnalytics", async () => {
    const { id } = await createUpload(t, "watched");
    const client = newClient();
    const started = await startView(t, id, client);
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ viewId: expect.any(String), viewToken: expect.stringMatching(/^va2\./) });
    const view = { videoId: id, viewToken: started.body.viewToken };
    // The ingest thread is started by the first batch, not by the API (nor by a view's start).
    expect(t.app.services.analytics.ingestThread.threadId).toBeNull();
    const first = await sendBatch(
      t,
      view,
      0,
      [
        { type: "startup", at: 1250, startupMs: 1250 },
        { type: "rendition", at: 1250, height: 360 },
        { type: "watch", at: 6250, height: 360, watchedMs: 5000 },
        { type: "rendition", at: 6250, height: 720 },
        { type: "rebuffer", at: 7000, durationMs: 400 },
      ],
      client,
    );
    expect(first).toMatchObject({ status: 202, body: { counted: true } });
    // The answer declares its length: one write, not chunks and a terminator.
    expect(first.headers.get("content-length")).toBe(String(JSON.stringify(first.body).length));
    expect(first.headers.get("transfer-encoding")).toBeNull();
    expect(t.app.services.analytics.ingestThread.threadId).not.toBeNull();
    const second = [
      { type: "rebuffer", at: 9000, durationMs: 600 },
      { type: "watch", at: 17000, height: 720, watchedMs: 10000 },
      { type: "failure", at: 17000, fatal: false, code: "fragLoadError" },
      { type: "completed", at: 17000 },
    ] satisfies BeaconEvent[];
    expect((await sendBatch(t, view, 1, second, client)).body).toEqual({ counted: true });
    // A batch sent again (a retried sendBeacon) changes nothing.
    expect(await sendBatch(t, view, 1, second, client)).toMatchObject({ status: 202, body: { counted: false } });

    // A second view from the same viewer is a view, not a viewer.
    const again = await startView(t, id, client);
    expect(again.status).toBe(201);
    await sendBatch(
      t,
      { videoId: id, viewToken: again.body.viewToken },
      0,
      [{ type: "startup", at: 0, startupMs: 3100 }],
      client,
    );

    const a = await analyticsOf(t, id);
    expect(a).toMatchObject({
      views: 2,
      uniqueViewers: 1,
      watchTimeSeconds: 15,
      rebufferCount: 2,
      rebufferSeconds: 1,
      renditionSwitches: 2,
      failureRate: 0,
      completionRate: 0.5,
    });
    expect(a.rebufferRatio).toBeCloseTo(1 / 16, 6);
    // The histogram's buckets are 100 ms wide below 2 s and 250 ms wide to 5 s.
    expect(a.startupTimeP50Ms).toBeGreaterThanOrEqual(1200);
    expect(a.startupTimeP50Ms).toBeLessThanOrEqual(1300);
    expect(a.startupTimeP95Ms).toBeGreaterThanOrEqual(3000);
    expect(a.startupTimeP95Ms).toBeLessThanOrEqual(3250);
    expect(a.topRenditions).toEqual([
      { height: 720, watchTimeSeconds: 10, share: 10 / 15 },
      { height: 360, watchTimeSeconds: 5, share: 5 / 15 },
    ]);
    expect(a.timeline).toHaveLength(1);
    expect(a.timeline[0]).toMatchObject({ views: 2, watchTimeSeconds: 15 });

    const { data } = await t.gql(TENANT_ANALYTICS, range());
    expect(data.tenantAnalytics.views).toBeGreaterThanOrEqual(2);
    // Another tenant sees none of it.
    const other = `Bearer ${await tenantKeySecret(t.app.services.db, "analytics-other", ["videos:read"])}`;
    const { data: theirs } = await t.gql(TENANT_ANALYTICS, range(), other);
    expect(theirs.tenantAnalytics).toEqual({ views: 0, watchTimeSeconds: 0 });
    const hidden = await t.gql(ANALYTICS, { id, ...range() }, other);
    expect(hidden.data?.video ?? null).toBeNull();
  });

  it("bounds a view's watch time by the time since the server started it and by the video's duration", async () => {
    // The issue's forgery: one batch on a view a moment old reported 50 hours (50 events of 1 h).
    const fifty = Array.from({ length: BEACON_LIMITS.eventsPerBatch }, (_, i) => ({
      type: "watch" as const,
      at: i,
      height: 360,
      watchedMs: BEACON_LIMITS.maxDurationMs,
    }));
    const { id: fresh } = await createUpload(t, "forged watch time");
    const client = newClient();
    const before = Date.now();
    const started = await startView(t, fresh, client);
    const view = { videoId: fresh, viewToken: started.body.viewToken };
    expect(await sendBatch(t, view, 0, fifty, client)).toMatchObject({ status: 202, body: { counted: true } });
    // The bound is spent: a later batch adds nothing now, but is still a batch (its seq counts).
    expect(await sendBatch(t, view, 1, fifty.slice(0, 1), client)).toMatchObject({
      status: 202,
      body: { counted: true },
    });
    const elapsedMs = Date.now() - before;
    const a = await analyticsOf(t, fresh);
    const { playbackRate, allowanceMs, durationMultiple } = WATCH_BOUNDS;
    expect(a.watchTimeSeconds).toBeGreaterThanOrEqual(allowanceMs / 1000);
    expect(a.watchTimeSeconds).toBeLessThanOrEqual((allowanceMs + playbackRate * elapsedMs) / 1000);
    // The heights (what costSummary's egress is estimated from) and the view's row hold the same bound.
    expect(a.topRenditions).toEqual([{ height: 360, watchTimeSeconds: a.watchTimeSeconds, share: 1 }]);
    const [row] = await t.app.services.db.$queryRaw<{ watchMs: bigint }[]>`
      SELECT "watchMs" FROM "AnalyticsView" WHERE id = ${started.body.viewId}::uuid`;
    expect(Number(row!.watchMs) / 1000).toBe(a.watchTimeSeconds);

    // A 5 s video watched for an hour by its token's clock: at most a few replays of it count.
    const { id: short } = await createUpload(t, "five seconds");
    await t.app.services.db.video.update({ where: { id: short }, data: { duration: 5 } });
    const shortView = await startView(t, short, client);
    const [, viewId, videoId, tenantId, startedAt, durationMs] = String(shortView.body.viewToken).split(".");
    expect(durationMs).toBe("5000");
    // An hour-old start written into the token breaks its MAC; signed by the API's secret, it is genuine.
    const hourAgo = String(Number(startedAt) - 3600_000);
    const parts = String(shortView.body.viewToken).split(".");
    parts[4] = hourAgo;
    const rewritten = parts.join(".");
    expect(await sendBatch(t, { videoId: short, viewToken: rewritten }, 0, fifty, client)).toMatchObject({
      status: 403,
      body: { error: "invalid view token" },
    });
    const anHourOld = new ViewTokens(SIGNING_SECRET, 600).issue({
      viewId: viewId!,
      videoId: videoId!,
      tenantId: tenantId!,
      startedAt: Number(hourAgo),
      durationMs: 5000,
    }).token;
    expect((await sendBatch(t, { videoId: short, viewToken: anHourOld }, 0, fifty, client)).status).toBe(202);
    expect((await analyticsOf(t, short)).watchTimeSeconds).toBe((5000 * durationMultiple + allowanceMs) / 1000);
  });

  it(`takes a view token of the release before (va1) until it expires, its watch time bounded from its issue \
(its expiry less the TTL)`, async () => {
    const fifty = Array.from({ length: BEACON_LIMITS.eventsPerBatch }, (_, i) => ({
      type: "watch" as const,
      at: i,
      height: 360,
      watchedMs: BEACON_LIMITS.maxDurationMs,
    }));
    const { id } = await createUpload(t, "a view across the upgrade");
    const client = newClient();
    const started = await startView(t, id, client);
    const [, viewId, videoId, tenantId] = String(started.body.viewToken).split(".");
    // Minted as the release before did: its key, its MAC over view, video, tenant and expiry.
    const ttlSeconds = 6 * 3600; // ANALYTICS_VIEW_TOKEN_TTL_SECONDS's default, as in this test's API
    const issuedMsAgo = 20_000;
    const expires = Math.floor((Date.now() - issuedMsAgo) / 1000) + ttlSeconds;
    const key = createHmac("sha256", SIGNING_SECRET).update("videograph analytics view tokens v1").digest();
    const v1 = (expiry: number) =>
      `va1.${viewId}.${videoId}.${tenantId}.${expiry}.${createHmac("sha256", key)
        .update(`${viewId}\n${videoId}\n${tenantId}\n${expiry}`)
        .digest("base64url")}`;
    const before = Date.now();
    expect(await sendBatch(t, { videoId: id, viewToken: v1(expires) }, 0, fifty, client)).toMatchObject({
      status: 202,
      body: { counted: true },
    });
    const { playbackRate, allowanceMs } = WATCH_BOUNDS;
    const watched = (await analyticsOf(t, id)).watchTimeSeconds;
    // Bounded from its issue (20 s ago, to the second), not the 50 hours it reported.
    expect(watched).toBeGreaterThanOrEqual((allowanceMs + playbackRate * issuedMsAgo) / 1000);
    expect(watched).toBeLessThanOrEqual(
      (allowanceMs + playbackRate * (issuedMsAgo + 1000 + Date.now() - before)) / 1000,
    );
    // Forged or expired, a va1 token is refused as a va2 one is.
    const forged = v1(expires).replace(/.$/, (c) => (c === "A" ? "B" : "A"));
    expect(await sendBatch(t, { videoId: id, viewToken: forged }, 1, fifty, client)).toMatchObject({
      status: 403,
      body: { error: "invalid view token" },
    });
    expect(
      await sendBatch(t, { videoId: id, viewToken: v1(Math.floor(Date.now() / 1000) - 1) }, 1, fifty, client),
    ).toMatchObject({ status: 403, body: { error: "view token expired; start a new view" } });
  });

  it(`counts at most ${UNIQUE_VIEWERS_PER_SOURCE} unique viewers of a video a day from one address, whatever its User-Agents`, async () => {
    const { id } = await createUpload(t, "many agents");
    const client = newClient();
    const AGENTS = 30;
    // All at once: views starting together cannot pass the bound.
    const starts = await Promise.all(
      Array.from({ length: AGENTS }, (_, i) =>
        post(t, ANALYTICS_PATHS.views, { v: 1, videoId: id }, client, { "user-agent": `agent ${i}` }),
      ),
    );
    expect(starts.map((s) => s.status)).toEqual(Array(AGENTS).fill(201));
    // One of the counted agents again: a view, not a viewer. Another address: a viewer.
    await post(t, ANALYTICS_PATHS.views, { v: 1, videoId: id }, client, { "user-agent": "agent 0" });
    await post(t, ANALYTICS_PATHS.views, { v: 1, videoId: id }, newClient(), { "user-agent": "agent 0" });
    expect(await analyticsOf(t, id)).toMatchObject({ views: AGENTS + 2, uniqueViewers: UNIQUE_VIEWERS_PER_SOURCE + 1 });
    // The address is stored only as that day's salted hash, pruned with the viewers'.
    const sources = await t.app.services.db.analyticsDailySource.findMany({ where: { videoId: id } });
    expect(sources.map((s) => s.viewers).sort()).toEqual([1, UNIQUE_VIEWERS_PER_SOURCE]);
    expect(sources.some((s) => s.sourceHash.includes(client))).toBe(false);
  });

  it("takes a live broadcast's latency reports into the operators' histogram, once per batch, and stores nothing of them", async () => {
    const { id } = await createUpload(t, "live latency");
    const client = newClient();
    const started = await startView(t, id, client);
    const view = { videoId: id, viewToken: started.body.viewToken };
    const latency = async () => {
      const values = (await liveViewerLatencySeconds.get()).values;
      const of = (name: string) => values.find((v) => v.metricName === name)?.value ?? 0;
      return {
        count: of("videograph_live_viewer_latency_seconds_count"),
        sum: of("videograph_live_viewer_latency_seconds_sum"),
      };
    };
    const before = await latency();
    const events = [
      { type: "startup", at: 900, startupMs: 900 },
      // A batch counts one report, its last.
      { type: "liveLatency", at: 5900, latencyMs: 9000 },
      { type: "liveLatency", at: 10_900, latencyMs: 2150 },
    ] satisfies BeaconEvent[];
    expect(await sendBatch(t, view, 0, events, client)).toMatchObject({ status: 202, body: { counted: true } });
    // The same batch again (a retried sendBeacon) reports nothing again.
    expect(await sendBatch(t, view, 0, events, client)).toMatchObject({ status: 202, body: { counted: false } });
    const after = await latency();
    expect(after.count - before.count).toBe(1);
    expect(after.sum - before.sum).toBeCloseTo(2.15, 6);
    // A latency beyond the format's bound (a duration of 1 h) is refused with the batch.
    const tooLong = await sendBatch(
      t,
      view,
      1,
      [{ type: "liveLatency", at: 20_900, latencyMs: BEACON_LIMITS.maxDurationMs + 1 }],
      client,
    );
    expect(tooLong.status).toBe(400);
    expect((await latency()).count).toBe(after.count);
    await t.app.services.analytics.ingestThread.flush();
    // The view's figures are its startup only: latency is not a column of any row.
    expect((await analyticsOf(t, id)).views).toBe(1);
  });

  it("refuses a view token of another tenant's video, a forged one and an expired one", async () => {
    const { id: ours } = await createUpload(t, "ours");
    const otherKey = `Bearer ${await tenantKeySecret(t.app.services.db, "analytics-rival", ["videos:write", "videos:read"])}`;
    const { id: theirs } = await createUpload(t, "theirs", {}, otherKey);
    const client = newClient();
    const their = await startView(t, theirs, client);
    expect(their.status).toBe(201);
    const event: BeaconEvent[] = [{ type: "watch", at: 1000, height: 360, watchedMs: 1000 }];

    const crossed = await sendBatch(t, { videoId: ours, viewToken: their.body.viewToken }, 0, event, client);
    expect(crossed).toMatchObject({ status: 403, body: { error: "view token is for another video" } });

    // The tenant or video inside the token rewritten: the MAC no longer matches.
    const [, viewId, videoId, tenantId, startedAt, durationMs, expires, mac] = String(their.body.viewToken).split(".");
    const oursTenant = (await t.app.services.db.video.findUniqueOrThrow({ where: { id: ours } })).tenantId;
    const rewritten = ["va2", viewId, ours, oursTenant, startedAt, durationMs, expires, mac].join(".");
    expect(await sendBatch(t, { videoId: ours, viewToken: rewritten }, 0, event, client)).toMatchObject({
      status: 403,
      body: { error: "invalid view token" },
    });
    const claims = { viewId: viewId!, videoId: videoId!, tenantId: tenantId!, startedAt: Date.now(), durationMs: null };
    const otherSecret = new ViewTokens("not-the-api-signing-secret-0123456789abcdef", 600).issue(claims).token;
    expect(await sendBatch(t, { videoId: theirs, viewToken: otherSecret }, 0, event, client)).toMatchObject({
      status: 403,
      body: { error: "invalid view token" },
    });
    const expired = new ViewTokens(SIGNING_SECRET, 60).issue(claims, Date.now() - 120_000).token;
    expect(await sendBatch(t, { videoId: theirs, viewToken: expired }, 0, event, client)).toMatchObject({
      status: 403,
      body: { error: expect.stringContaining("expired") },
    });
    // The same claims signed with the API's secret and still valid are taken: the refusals above were the token's.
    const genuine = new ViewTokens(SIGNING_SECRET, 60).issue(claims).token;
    const withStartup: BeaconEvent[] = [{ type: "startup", at: 0, startupMs: 720 }, ...event];
    expect((await sendBatch(t, { videoId: theirs, viewToken: genuine }, 0, withStartup, client)).status).toBe(202);
    expect((await rowCounts(t, ours)).views).toBe(0);
    expect((await analyticsOf(t, theirs, otherKey)).watchTimeSeconds).toBe(1);
    // The rival tenant's own rollup holds exactly its one view.
    const { data } = await t.gql(TENANT_STARTUP, range(), otherKey);
    expect(data.tenantAnalytics).toMatchObject({ views: 1, watchTimeSeconds: 1 });
    expect(data.tenantAnalytics.startupTimeP50Ms).toBeGreaterThanOrEqual(700);
    expect(data.tenantAnalytics.startupTimeP50Ms).toBeLessThanOrEqual(800);
  });

  it("starts a view of a SIGNED video only with its playback token", async () => {
    const { id } = await createUpload(t, "signed", { playbackPolicy: "SIGNED" });
    const client = newClient();
    expect(await startView(t, id, client)).toMatchObject({
      status: 403,
      body: { error: expect.stringContaining("token") },
    });
    expect(await startView(t, id, client, { playbackToken: "o.1.forged" })).toMatchObject({ status: 403 });
    const token = t.app.services.playbackTokens.issue(id);
    expect((await startView(t, id, client, { playbackToken: token })).status).toBe(201);
    expect(await startView(t, "00000000-0000-4000-8000-000000000000", client)).toMatchObject({ status: 404 });
  });

  it("refuses oversize and malformed bodies with a 4xx that names the problem, storing nothing", async () => {
    const { id } = await createUpload(t, "hostile");
    const client = newClient();
    const started = await startView(t, id, client);
    const view = { videoId: id, viewToken: started.body.viewToken };
    const batch = (events: unknown[], extra: Record<string, unknown> = {}) => ({
      v: 1,
      videoId: id,
      viewToken: view.viewToken,
      seq: 0,
      events,
      ...extra,
    });
    const oversize = JSON.stringify(batch([{ type: "completed", at: 0 }], { pad: "x".repeat(MAX_BODY) }));
    expect(await post(t, ANALYTICS_PATHS.beacons, oversize, client)).toMatchObject({
      status: 413,
      body: { error: `a request body is at most ${MAX_BODY} bytes` },
    });
    const refused: [unknown, string | RegExp][] = [
      ["{not json", "the body is not JSON"],
      [batch([{ type: "rendition", at: 0, height: BEACON_LIMITS.maxHeight + 1 }]), /^events\.0\.height/],
      [batch([{ type: "watch", at: 0, height: 360, watchedMs: -5 }]), /^events\.0\.watchedMs/],
      [batch([{ type: "failure", at: 0, fatal: true, code: "<script>" }]), /^events\.0\.code/],
      [batch([{ type: "teleport", at: 0 }]), /^events\.0\.type/],
      [batch([{ type: "completed", at: 0, extra: 1 }]), /^events\.0/],
      [
        batch(Array.from({ length: BEACON_LIMITS.eventsPerBatch + 1 }, () => ({ type: "completed", at: 0 }))),
        /^events/,
      ],
      [batch([]), /^events/],
      [{ ...batch([{ type: "completed", at: 0 }]), v: 2 }, /^v:/],
    ];
    for (const [body, error] of refused) {
      const answer = await post(t, ANALYTICS_PATHS.beacons, body, client);
      expect(answer.status, JSON.stringify(body).slice(0, 120)).toBe(400);
      expect(answer.body.error).toMatch(error);
    }
    // A body sent in chunks with no declared length is refused once it passes the bound, without
    // waiting for its end: the request below never ends.
    const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${t.url}${ANALYTICS_PATHS.beacons}`, {
        method: "POST",
        headers: { "x-forwarded-for": client, "content-type": "text/plain" },
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("error", reject);
      req.write("x".repeat(MAX_BODY));
      req.write("x".repeat(1024));
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body).error).toBe(`a request body is at most ${MAX_BODY} bytes`);
    const get = await fetch(`${t.url}${ANALYTICS_PATHS.beacons}`, { headers: { "x-forwarded-for": client } });
    expect(get.status).toBe(405);
    const a = await analyticsOf(t, id);
    expect(a).toMatchObject({ views: 1, watchTimeSeconds: 0, completionRate: 0 });
  });

  it("rate-limits a flood per view and per client (429 with Retry-After) while playback is served", async () => {
    const { id } = await createUpload(t, "flooded");
    const master =
      "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180\n180p/index.m3u8\n";
    await t.app.services.storage.write(`videos/${id}/hls/master.m3u8`, Readable.from([Buffer.from(master)]), {
      limit: master.length,
      contentType: "application/vnd.apple.mpegurl",
    });
    await t.app.services.db.video.update({
      where: { id },
      data: { status: "READY", playable: true, masterKey: `videos/${id}/hls/master.m3u8` },
    });
    const client = newClient();
    const started = await startView(t, id, client);
    const view = { videoId: id, viewToken: started.body.viewToken };
    // In order, as one player sends them: a batch overtaken by a later one would count as a repeat.
    const perView: Answer[] = [];
    for (let seq = 0; seq < PER_VIEW + 4; seq++) {
      perView.push(
        await sendBatch(t, view, seq, [{ type: "watch", at: seq * 1000, height: 180, watchedMs: 1000 }], client),
      );
    }
    const statuses = perView.map((a) => a.status);
    expect(statuses).toEqual([...Array(PER_VIEW).fill(202), 429, 429, 429, 429]);
    const limited = perView.find((a) => a.status === 429)!;
    expect(limited.body.error).toBe("too many analytics requests for this view; slow down");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);

    // The client's address has used 1 + PER_VIEW + 4 requests; the rest of its minute runs out.
    const flood = await Promise.all(Array.from({ length: PER_CLIENT }, () => startView(t, id, client)));
    expect(flood.filter((a) => a.status === 429).length).toBe(PER_VIEW + 5);
    expect(flood.find((a) => a.status === 429)!.body.error).toBe(
      "too many analytics requests from this address; slow down",
    );
    // Playback from that same address is untouched, and so is another address's analytics.
    const playback = await fetch(`${t.url}/media/videos/${id}/hls/master.m3u8`, {
      headers: { "x-forwarded-for": client },
    });
    expect(playback.status).toBe(200);
    expect(await playback.text()).toContain("180p/index.m3u8");
    expect((await startView(t, id, newClient())).status).toBe(201);
    // Only the batches let through were counted.
    expect((await analyticsOf(t, id)).watchTimeSeconds).toBe(PER_VIEW);
  });

  it("stores nothing while the tenant's collection is off", async () => {
    const viewer = `Bearer ${await tenantKeySecret(t.app.services.db, "default", ["videos:read"], "viewer")}`;
    const { data: refused, errors } = await t.gql(SET_COLLECTION, { enabled: false }, viewer);
    expect(refused).toBeNull();
    expect(errors?.[0]?.extensions?.code).toBe("FORBIDDEN");

    const { id } = await createUpload(t, "private");
    const client = newClient();
    const started = await startView(t, id, client);
    const view = { videoId: id, viewToken: started.body.viewToken };
    expect((await t.gql(SET_COLLECTION, { enabled: false })).data).toEqual({
      setAnalyticsCollection: { enabled: false },
    });
    try {
      expect((await t.gql(COLLECTION, {}, viewer)).data).toEqual({
        analyticsCollection: { enabled: false },
      });
      const off = { status: 403, body: { error: "analytics collection is off for this video's tenant" } };
      expect(await startView(t, id, client)).toMatchObject(off);
      expect(await sendBatch(t, view, 0, [{ type: "completed", at: 0 }], client)).toMatchObject(off);
      expect(await analyticsOf(t, id)).toMatchObject({ views: 1, completionRate: 0 });
    } finally {
      await t.gql(SET_COLLECTION, { enabled: true });
    }
    // Do Not Track: the browser's word is enough, whatever the tenant's setting.
    expect(await post(t, ANALYTICS_PATHS.views, { v: 1, videoId: id }, client, { dnt: "1" })).toMatchObject({
      status: 403,
      body: { error: expect.stringContaining("Do Not Track") },
    });
    expect(await sendBatch(t, view, 0, [{ type: "completed", at: 0 }], client)).toMatchObject({ status: 202 });
    expect((await analyticsOf(t, id)).completionRate).toBe(1);
  });

  it("prunes raw views past the retention window, and viewer hashes and salts of days before yesterday", async () => {
    const { id } = await createUpload(t, "old views");
    const started = await startView(t, id, newClient());
    expect(started.status).toBe(201);
    const db = t.app.services.db;
    const tenantId = (await db.video.findUniqueOrThrow({ where: { id } })).tenantId;
    const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
    await db.analyticsView.create({ data: { id: crypto.randomUUID(), videoId: id, tenantId, startedAt: daysAgo(31) } });
    await db.analyticsDailyViewer.create({ data: { videoId: id, day: daysAgo(3), viewerHash: "old" } });
    await db.analyticsDailySource.create({ data: { videoId: id, day: daysAgo(3), sourceHash: "old", viewers: 1 } });
    await db.analyticsSalt.create({ data: { day: daysAgo(3), salt: "old" } });
    expect(await rowCounts(t, id)).toMatchObject({ views: 2, viewers: 2 });

    await t.app.services.analytics.prune();
    // The default window is 30 days: the 31-day-old view goes, today's stays; the rollups stay.
    expect(await rowCounts(t, id)).toMatchObject({ views: 1, hours: 1, viewers: 1 });
    expect(await db.analyticsSalt.count({ where: { day: { lt: daysAgo(2) } } })).toBe(0);
    expect(await db.analyticsDailySource.count({ where: { videoId: id, day: { lt: daysAgo(2) } } })).toBe(0);
    expect(await db.analyticsDailySource.count({ where: { videoId: id } })).toBe(1);
    expect(await db.analyticsSalt.count()).toBeGreaterThan(0);
  });

  it("takes a burst of batches from many views while GraphQL queries are answered beside them", async () => {
    const { id } = await createUpload(t, "burst");
    const VIEWS = 20;
    const BATCHES = 6;
    const viewers = await Promise.all(
      Array.from({ length: VIEWS }, async () => {
        const client = newClient();
        const started = await startView(t, id, client);
        return { client, view: { videoId: id, viewToken: started.body.viewToken } };
      }),
    );
    const sending = Promise.all(
      viewers.map(async ({ client, view }) => {
        const statuses: number[] = [];
        for (let seq = 0; seq < BATCHES; seq++) {
          const events = [{ type: "watch", at: seq * 1000, height: 720, watchedMs: 1000 }] satisfies BeaconEvent[];
          statuses.push((await sendBatch(t, view, seq, events, client)).status);
        }
        return statuses;
      }),
    );
    const answered: unknown[] = [];
    for (let i = 0; i < 10; i++) answered.push((await t.gql(TITLE, { id })).data);
    expect((await sending).flat()).toEqual(Array(VIEWS * BATCHES).fill(202));
    expect(answered).toEqual(Array(10).fill({ video: { id, title: "burst" } }));
    expect(await analyticsOf(t, id)).toMatchObject({ views: VIEWS, watchTimeSeconds: VIEWS * BATCHES });
  });

  it("never deadlocks a view's start against a flush of beacons on the same hour, and so loses no beacon", async () => {
    // Both write the video's hour and the tenant's hour; taken in opposite orders, Postgres killed one
    // of them after a second's wait and a flush's beacons were lost (seen once in four full runs).
    const { id } = await createUpload(t, "busy");
    const { tenantId } = await t.app.services.db.video.findUniqueOrThrow({ where: { id }, select: { tenantId: true } });
    const pool = new pg.Pool({ connectionString: t.database.url, max: 8 });
    const ingest = createAnalyticsIngest(pool);
    const buffer = createBatchBuffer(pool, 60_000); // not started: flushed below, beside the views' starts
    const watched = batchFigures([{ type: "watch", at: 1000, height: 180, watchedMs: 1000 }]);
    const failures: unknown[] = [];
    let rounds = 0;
    try {
      for (const until = Date.now() + 1000; Date.now() < until; rounds++) {
        for (let i = 0; i < 3; i++)
          buffer.add(
            {
              viewId: randomUUID(),
              videoId: id,
              tenantId,
              startedAt: Date.now(),
              durationMs: null,
              expires: Date.now() + 60_000,
            },
            0,
            watched,
          );
        const results = await Promise.allSettled([
          buffer.flush(),
          ...Array.from({ length: 5 }, (_, i) =>
            ingest.startView({ videoId: id, tenantId, client: `viewer ${rounds}.${i}`, userAgent: "test" }),
          ),
        ]);
        for (const r of results) if (r.status === "rejected") failures.push(r.reason);
      }
    } finally {
      await pool.end();
    }
    expect(failures).toEqual([]);
    // Without the order, a deadlock costs a second (Postgres's deadlock_timeout): a round or two; with it, hundreds.
    expect(rounds).toBeGreaterThan(10);
    const rows = await t.app.services.db.$queryRaw<{ watchMs: bigint; views: number }[]>`
      SELECT "watchMs", views FROM "AnalyticsHour" WHERE "videoId" = ${id}::uuid`;
    // The buffer logs a failed write and drops it: every beacon reached the rollup.
    expect(rows.map((r) => [Number(r.watchMs), r.views])).toEqual([[rounds * 3000, rounds * 5]]);
  });

  /**
   * A video of its own, a pool whose statements look for a deadlock after 300 ms, another writer that
   * waits 10 s before it looks (so the pool's statement is the victim) and a client that watches.
   */
  async function deadlockScene(title: string) {
    const { id } = await createUpload(t, title);
    const { tenantId } = await t.app.services.db.video.findUniqueOrThrow({ where: { id }, select: { tenantId: true } });
    const pool = new pg.Pool({ connectionString: t.database.url, max: 2, options: "-c deadlock_timeout=300ms" });
    const other = new pg.Client({ connectionString: t.database.url, options: "-c deadlock_timeout=10s" });
    const watcher = new pg.Client({ connectionString: t.database.url });
    await Promise.all([other.connect(), watcher.connect()]);
    const end = () => Promise.all([pool.end(), other.end(), watcher.end()]);
    return { id, tenantId, pool, other, watcher, end };
  }

  it("writes a flush again when Postgres chose it as a deadlock's victim, and so loses no beacon", async () => {
    // Another writer (another API instance's flush, an operator's statement) can take the rollups' rows
    // in an order of its own. Here a transaction holds the video's hour while the flush waits for it,
    // then asks for the height's hour the flush already wrote: a deadlock the flush finds first.
    const { id, tenantId, pool, other, watcher, end } = await deadlockScene("deadlocked");
    const buffer = createBatchBuffer(pool, 60_000); // not started: flushed below
    const watched = batchFigures([{ type: "watch", at: 1000, height: 180, watchedMs: 1000 }]);
    const view = () => ({
      viewId: randomUUID(),
      videoId: id,
      tenantId,
      startedAt: Date.now(),
      durationMs: null,
      expires: Date.now() + 60_000,
    });
    try {
      buffer.add(view(), 0, watched);
      await buffer.flush(); // the rows exist
      const before = await deadlocksOf(watcher);
      await other.query("BEGIN");
      await other.query(`UPDATE "AnalyticsHour" SET "watchMs" = "watchMs" WHERE "videoId" = $1`, [id]);
      buffer.add(view(), 0, watched);
      const flushed = buffer.flush();
      await expect.poll(() => lockWaiting(watcher, "WITH d AS%"), { interval: 10, timeout: 5000 }).toBe(true);
      await other.query(`UPDATE "AnalyticsHeightHour" SET "watchMs" = "watchMs" WHERE "videoId" = $1`, [id]);
      await other.query("COMMIT");
      await flushed;
      // The premise held: Postgres found a deadlock (and the other writer, which waits 10 s to look, went on).
      await expect.poll(() => deadlocksOf(watcher), { timeout: 5000 }).toBeGreaterThan(before);
    } finally {
      await end();
    }
    const rows = await t.app.services.db.$queryRaw<{ watchMs: bigint }[]>`
      SELECT "watchMs" FROM "AnalyticsHour" WHERE "videoId" = ${id}::uuid`;
    expect(rows.map((r) => Number(r.watchMs))).toEqual([2000]);
  });

  it("starts a view again when Postgres chose its start as a deadlock's victim: the player keeps its view", async () => {
    // A failed start is answered 503 and the player reports nothing for that view. Here a transaction
    // holds the tenant's hour while a start waits for it, then asks for the video's hour the start wrote.
    const { id, tenantId, pool, other, watcher, end } = await deadlockScene("start deadlocked");
    const ingest = createAnalyticsIngest(pool);
    const start = (client: string) => ingest.startView({ videoId: id, tenantId, client, userAgent: "test" });
    try {
      await start("first viewer"); // the hours' rows exist
      const before = await deadlocksOf(watcher);
      await other.query("BEGIN");
      await other.query(`UPDATE "AnalyticsTenantHour" SET views = views WHERE "tenantId" = $1`, [tenantId]);
      const started = start("second viewer");
      await expect.poll(() => lockWaiting(watcher, "WITH v AS%"), { interval: 10, timeout: 5000 }).toBe(true);
      await other.query(`UPDATE "AnalyticsHour" SET views = views WHERE "videoId" = $1`, [id]);
      await other.query("COMMIT");
      expect(await started).toMatch(/^[0-9a-f-]{36}$/);
      // The premise held: Postgres found a deadlock (and the other writer, which waits 10 s to look, went on).
      await expect.poll(() => deadlocksOf(watcher), { timeout: 5000 }).toBeGreaterThan(before);
    } finally {
      await end();
    }
    const rows = await t.app.services.db.$queryRaw<{ views: number }[]>`
      SELECT views FROM "AnalyticsHour" WHERE "videoId" = ${id}::uuid`;
    expect(rows.map((r) => r.views)).toEqual([2]);
  });

  it("starts its ingest thread again when the thread dies, and goes on taking batches", async () => {
    const thread = t.app.services.analytics.ingestThread;
    const { id } = await createUpload(t, "restarted");
    const client = newClient();
    const started = await startView(t, id, client);
    const view = { videoId: id, viewToken: started.body.viewToken };
    const watched = (seq: number, watchedMs: number) =>
      sendBatch(t, view, seq, [{ type: "watch", at: seq * 10_000, height: 720, watchedMs }], client);
    expect(await watched(0, 1000)).toMatchObject({ status: 202, body: { counted: true } });
    // Written before the thread is killed (a report writes what the thread holds first): what it
    // still held would be lost, as on a crash of the process.
    expect((await analyticsOf(t, id)).watchTimeSeconds).toBe(1);

    const killed = thread.threadId;
    expect(killed).not.toBeNull();
    await thread.kill();
    await expect.poll(() => thread.threadId !== null && thread.threadId !== killed, { timeout: 10_000 }).toBe(true);
    expect(await watched(1, 2000)).toMatchObject({ status: 202, body: { counted: true } });
    expect((await analyticsOf(t, id)).watchTimeSeconds).toBe(3);
  });

  it("counts live viewers in viewersNow, and deleting the video deletes its analytics", async () => {
    const { id } = await createUpload(t, "live");
    const counts: number[] = [];
    const client = t.wsClient();
    const done = new Promise<void>((resolve, reject) => {
      const stop = client.subscribe<{ viewersNow: number }>(
        { query: `subscription ($id: ID!) { viewersNow(videoId: $id) }`, variables: { id } },
        {
          next: ({ data }) => {
            counts.push(data!.viewersNow);
            if (counts.length === 3) {
              stop();
              resolve();
            }
          },
          error: reject,
          complete: () => resolve(),
        },
      );
    });
    await expect.poll(() => counts).toEqual([0]);
    await startView(t, id, newClient());
    await expect.poll(() => counts, { timeout: 5000 }).toEqual([0, 1]);
    await startView(t, id, newClient());
    await done;
    expect(counts).toEqual([0, 1, 2]);

    expect(await rowCounts(t, id)).toMatchObject({ views: 2, hours: 1, viewers: 2 });
    const { data } = await t.gql(DELETE, { id });
    expect(data.deleteVideo.__typename).toBe("DeleteVideoSuccess");
    expect(await rowCounts(t, id)).toEqual({ views: 0, hours: 0, heights: 0, viewers: 0 });
  });
});
