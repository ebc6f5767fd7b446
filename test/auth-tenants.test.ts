import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapAdminKey, createApiKey, ensureTenant, revokeApiKey } from "../src/auth/api-keys.ts";
import { SCOPES } from "../src/auth/scopes.ts";
import { createDb } from "../src/db/client.ts";
import { createTestDatabase } from "./support/db.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH, tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, operationText } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { CREATE_UPLOAD, createUpload } from "./support/uploads.ts";

const JWT_SECRET = "a-shared-hs256-secret-of-at-least-32-chars";
const bearer = (secret: string) => `Bearer ${secret}`;

const VIDEO = graphql(`query($id: ID!) { video(id: $id) { id title status } }`);
const VIDEOS = graphql(`{ videos { edges { node { id } } } }`);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { id status } } }`);
const JOB = graphql(`query($id: ID!) { job(id: $id) { id kind } }`);
const WEBHOOK_ENDPOINTS = graphql(`{ webhookEndpoints { id } }`);
const CANCEL_VIDEO = graphql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename } }`);
const DELETE_VIDEO = graphql(`mutation($id: ID!) { deleteVideo(id: $id) { __typename } }`);
const COMPLETE_UPLOAD = graphql(`mutation($id: ID!) { completeUpload(videoId: $id) { __typename } }`);
const CANCEL_JOB = graphql(`mutation($id: ID!) { cancelJob(id: $id) { __typename } }`);
const RETRY_VARIANT = graphql(`mutation($id: ID!) { retryVariant(id: $id) { __typename } }`);
const RUN_WORKERS = graphql(`query($id: ID!) { video(id: $id) { jobs { edges { node { runs { workerId } } } } } }`);
const CREATE_WEBHOOK = graphql(`
  mutation { createWebhookEndpoint(input: { url: "http://127.0.0.1:9/a" }) {
    __typename ... on CreateWebhookEndpointSuccess { endpoint { id } } } }`);
const WEBHOOK_DELIVERY = graphql(`query($id: ID!) { webhookDelivery(id: $id) { id } }`);
const DELETE_WEBHOOK = graphql(`mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { __typename } }`);
const RESEND_DELIVERY = graphql(`mutation($id: ID!) { resendWebhookDelivery(id: $id) { __typename } }`);

function jwt(claims: Record<string, unknown>, expiresIn: string | number = "5m", secret = JWT_SECRET) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("viewer-1")
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

/** A JWT with exactly these claims (no iat or exp unless given). */
function unsigned(claims: Record<string, unknown>, secret = JWT_SECRET) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("viewer-1")
    .sign(new TextEncoder().encode(secret));
}
const now = () => Math.floor(Date.now() / 1000);

describe("authentication, scopes and tenants through the public API", () => {
  let t: TestApp;
  /** Tenant A: the admin key (tenant "default"); tenant B: its own admin-like key. */
  let keyB: string;
  let readOnlyA: string;
  let videoA: { id: string; jobId: string; uploadUrl: string; variantId: string };
  let waitingA: { id: string; uploadUrl: string };

  beforeAll(async () => {
    t = await startTestApp({ env: { JWT_SECRET, GRAPHQL_INTROSPECTION: "true" } });
    const db = t.app.services.db;
    keyB = await tenantKeySecret(db, "tenant-b", ["videos:read", "videos:write", "jobs:admin", "webhooks:admin"], "b");
    readOnlyA = await tenantKeySecret(db, "default", ["videos:read"], "ro");

    // A READY video of tenant A (media, a job and its runs), and one still waiting for its file.
    const clip = await makeClip({ width: 160, height: 90, seconds: 2, audio: false });
    const created = await createUpload(t, "a-ready");
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const job = await db.job.findFirstOrThrow({ where: { videoId: created.id } });
    const variant = await db.variant.findFirstOrThrow({ where: { videoId: created.id } });
    // FAILED, so that only the tenant check stands between B and a retry.
    await db.variant.update({ where: { id: variant.id }, data: { status: "FAILED" } });
    videoA = { id: created.id, jobId: job.id, uploadUrl: created.uploadUrl, variantId: variant.id };
    const waiting = await createUpload(t, "a-waiting");
    waitingA = { id: waiting.id, uploadUrl: waiting.uploadUrl };
  });
  afterAll(() => t?.stop());

  describe("credentials", () => {
    it("no credential: every operation is refused as UNAUTHENTICATED", async () => {
      const res = await t.gql(VIDEO, { id: videoA.id }, "");
      expect(res.data?.video ?? null).toBeNull();
      expect(res.errors![0]!.extensions!.code).toBe("UNAUTHENTICATED");
      const mutation = await t.gql(CREATE_UPLOAD, { input: { title: "x" } }, "");
      expect(mutation.errors![0]!.extensions!.code).toBe("UNAUTHENTICATED");
    });

    it("a wrong, malformed, revoked or expired key gets 401 with the reason, and no data", async () => {
      const db = t.app.services.db;
      const tenant = await ensureTenant(db, "default");
      const revoked = await createApiKey(db, { tenantId: tenant.id, name: "to revoke", scopes: ["videos:read"] });
      expect((await t.gql(VIDEO, { id: videoA.id }, bearer(revoked.secret))).data.video!.id).toBe(videoA.id);
      await revokeApiKey(db, revoked.key.id);
      const expired = await createApiKey(db, {
        tenantId: tenant.id,
        name: "expired",
        scopes: ["videos:read"],
        expiresAt: new Date(Date.now() - 1000),
      });

      for (const [authorization, reason] of [
        [bearer("vg_not_a_real_key_0000000000000000"), "unknown API key"],
        ["Basic dXNlcjpwYXNz", "expected `Authorization: Bearer"],
        [bearer(revoked.secret), "revoked"],
        [bearer(expired.secret), "expired"],
      ] as const) {
        const res = await fetch(`${t.url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization },
          body: JSON.stringify({ query: operationText(VIDEO), variables: { id: videoA.id } }),
        });
        expect(res.status, authorization).toBe(401);
        const body = await res.json();
        expect(body.data ?? null).toBeNull();
        expect(body.errors[0].message).toContain(reason);
      }
    });

    it("records lastUsedAt and stores only a hash of the key", async () => {
      const db = t.app.services.db;
      const tenant = await ensureTenant(db, "default");
      const { key, secret } = await createApiKey(db, { tenantId: tenant.id, name: "used", scopes: ["videos:read"] });
      expect(key.lastUsedAt).toBeNull();
      await t.gql(VIDEOS, {}, bearer(secret));
      await expect
        .poll(async () => (await db.apiKey.findUniqueOrThrow({ where: { id: key.id } })).lastUsedAt)
        .not.toBeNull();
      const row = await db.apiKey.findUniqueOrThrow({ where: { id: key.id } });
      expect(JSON.stringify(row)).not.toContain(secret);
    });

    it("a viewer's JWT reads its tenant's videos, not another's, and cannot write", async () => {
      const viewer = bearer(await jwt({ tenant_id: "default" }, "23h"));
      expect((await t.gql(VIDEO, { id: videoA.id }, viewer)).data.video!.id).toBe(videoA.id);
      const write = await t.gql(CREATE_UPLOAD, { input: { title: "x" } }, viewer);
      expect(write.errors![0]!.extensions!.code).toBe("FORBIDDEN");
      // Scopes beyond JWT_ALLOWED_SCOPES are dropped, whatever the token asks for.
      const greedy = bearer(await jwt({ tenant_id: "default", scope: "videos:read videos:write webhooks:admin" }));
      expect((await t.gql(CREATE_UPLOAD, { input: { title: "x" } }, greedy)).errors![0]!.extensions!.code).toBe(
        "FORBIDDEN",
      );
      const otherTenant = bearer(await jwt({ tenant_id: "tenant-b" }));
      expect((await t.gql(VIDEO, { id: videoA.id }, otherTenant)).data.video).toBeNull();
    });

    it("expired, tampered, wrongly signed or tenant-less JWTs are refused", async () => {
      const good = await jwt({ tenant_id: "default" });
      const [h, p, s] = good.split(".");
      const tamperedPayload = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(p!, "base64url").toString()), tenant_id: "tenant-b" }),
      ).toString("base64url");
      const cases: [string, string][] = [
        [await jwt({ tenant_id: "default" }, Math.floor(Date.now() / 1000) - 60), "expired"],
        [`${h}.${tamperedPayload}.${s}`, "not valid"],
        [await jwt({ tenant_id: "default" }, "5m", "another-secret-another-secret-another-secret"), "not valid"],
        [await jwt({}), "no tenant_id claim"],
        [await jwt({ tenant_id: "no-such-tenant" }), "tenant does not exist"],
        // Longer than JWT_MAX_LIFETIME_SECONDS (default 24 h): by exp - iat, by exp - now when
        // there is no iat, and by exp - now when iat is put in the future to look short.
        [await jwt({ tenant_id: "default" }, "100y"), "lifetime"],
        [await jwt({ tenant_id: "default" }, "25h"), "lifetime"],
        [await unsigned({ tenant_id: "default", exp: now() + 25 * 3600 }), "lifetime"],
        [
          await unsigned({ tenant_id: "default", iat: now() + 100 * 365 * 86400 - 60, exp: now() + 100 * 365 * 86400 }),
          "lifetime",
        ],
        [await unsigned({ tenant_id: "default" }), "exp"],
      ];
      for (const [token, reason] of cases) {
        const res = await t.gql(VIDEO, { id: videoA.id }, bearer(token));
        expect(res.errors?.[0]?.message, reason).toContain(reason);
        expect(res.errors![0]!.extensions!.code).toBe("UNAUTHENTICATED");
      }
    });
  });

  describe("scopes", () => {
    it("a read-only key reads but cannot write, cancel jobs, see the failure log or manage webhooks", async () => {
      const ro = bearer(readOnlyA);
      expect((await t.gql(VIDEO, { id: videoA.id }, ro)).data.video!.id).toBe(videoA.id);
      const denied = [
        ["createUpload", () => t.gql(CREATE_UPLOAD, { input: { title: "x" } }, ro)],
        ["deleteVideo", () => t.gql(DELETE_VIDEO, { id: videoA.id }, ro)],
        ["cancelJob", () => t.gql(CANCEL_JOB, { id: videoA.jobId }, ro)],
        ["webhookEndpoints", () => t.gql(WEBHOOK_ENDPOINTS, {}, ro)],
        ["runs", () => t.gql(RUN_WORKERS, { id: videoA.id }, ro)],
      ] as const;
      for (const [operation, send] of denied) {
        const res = await send();
        expect(res.errors?.[0]?.extensions?.code, operation).toBe("FORBIDDEN");
      }
    });
  });

  describe("tenant isolation: tenant B cannot read or touch tenant A's data", () => {
    const asB = () => bearer(keyB);

    it("queries: video, videos and the job behind it", async () => {
      expect((await t.gql(VIDEO, { id: videoA.id }, asB())).data.video).toBeNull();
      expect((await t.gql(JOB, { id: videoA.jobId })).data.job).toEqual({ id: videoA.jobId, kind: "TRANSCODE" });
      expect((await t.gql(JOB, { id: videoA.jobId }, asB())).data.job).toBeNull();
      expect((await t.gql(JOB, { id: "not-a-job" })).data.job).toBeNull();
      expect((await t.gql(VIDEO, { id: waitingA.id }, asB())).data.video).toBeNull();
      const mine = (await createUpload(t, "b's own", {}, asB())).id;
      const listed = (await t.gql(VIDEOS, {}, asB())).data.videos.edges.map((e) => e.node.id);
      expect(listed).toEqual([mine]);
      const listedByA = (await t.gql(VIDEOS)).data.videos.edges.map((e) => e.node.id);
      expect(listedByA).toContain(videoA.id);
      expect(listedByA).not.toContain(mine);
    });

    it(`mutations: cancelVideo, deleteVideo, completeUpload, cancelJob answer NotFound and \
change nothing`, async () => {
      const ops = [
        ["cancelVideo", async () => (await t.gql(CANCEL_VIDEO, { id: waitingA.id }, asB())).data.cancelVideo],
        ["deleteVideo", async () => (await t.gql(DELETE_VIDEO, { id: videoA.id }, asB())).data.deleteVideo],
        ["completeUpload", async () => (await t.gql(COMPLETE_UPLOAD, { id: waitingA.id }, asB())).data.completeUpload],
        ["cancelJob", async () => (await t.gql(CANCEL_JOB, { id: videoA.jobId }, asB())).data.cancelJob],
        ["retryVariant", async () => (await t.gql(RETRY_VARIANT, { id: videoA.variantId }, asB())).data.retryVariant],
      ] as const;
      for (const [field, op] of ops) {
        expect((await op()).__typename, field).toBe("NotFoundError");
      }
      const [ready, waiting] = await Promise.all([t.gql(VIDEO, { id: videoA.id }), t.gql(VIDEO, { id: waitingA.id })]);
      expect(ready.data.video!.status).toBe("READY");
      expect(waiting.data.video!.status).toBe("WAITING_FOR_UPLOAD");
      expect((await fetch(`${t.url}/media/videos/${videoA.id}/hls/master.m3u8`)).status).toBe(200);
    });

    it("subscriptions: videoEvents of A's video is not found for B, over WebSocket", async () => {
      const sub = collectSubscription(t.wsClient(asB()), EVENTS, { id: videoA.id });
      await expect(sub.done).rejects.toThrow(/No video with id/);
    });

    it("webhooks: B cannot see, delete or resend A's endpoints and deliveries", async () => {
      const created = await t.gql(CREATE_WEBHOOK);
      const endpointId = expectTypename(created.data.createWebhookEndpoint, "CreateWebhookEndpointSuccess").endpoint.id;
      const delivery = await t.app.services.db.webhookDelivery.create({
        data: {
          eventId: crypto.randomUUID(),
          endpointId,
          eventType: "video.ready",
          payload: {},
          giveUpAt: new Date(Date.now() + 3600_000),
          status: "FAILED",
          nextAttemptAt: null,
        },
      });
      expect((await t.gql(WEBHOOK_ENDPOINTS, {}, asB())).data.webhookEndpoints).toEqual([]);
      expect((await t.gql(WEBHOOK_DELIVERY, { id: delivery.id }, asB())).data.webhookDelivery).toBeNull();
      const del = await t.gql(DELETE_WEBHOOK, { id: endpointId }, asB());
      expect(del.data.deleteWebhookEndpoint.__typename).toBe("NotFoundError");
      const resend = await t.gql(RESEND_DELIVERY, { id: delivery.id }, asB());
      expect(resend.data.resendWebhookDelivery.__typename).toBe("NotFoundError");
      expect((await t.app.services.db.webhookDelivery.findUniqueOrThrow({ where: { id: delivery.id } })).status).toBe(
        "FAILED",
      );
      expect((await t.gql(WEBHOOK_ENDPOINTS)).data.webhookEndpoints.map((e) => e.id)).toContain(endpointId);
    });

    it("upload URLs: A's URL re-pointed at another video fails its signature", async () => {
      const mine = await createUpload(t, "b target", {}, asB());
      const forged = waitingA.uploadUrl.replace(waitingA.id, mine.id);
      const res = await fetch(`${t.url}${forged}`, { method: "PUT", body: "bytes" });
      expect(res.status).toBe(403);
    });
  });

  describe("WebSocket connections authenticate in connection_init, like HTTP", () => {
    it("refuses a connection with no or a bad credential, saying why in the close reason, serves a good one", async () => {
      const refusals = [
        ["", 'Forbidden: no credential: send authorization: "Bearer <key>" in connection_init'],
        [bearer("vg_wrong_wrong_wrong_wrong_wrong"), "Forbidden: unknown API key"],
        ["Basic dXNlcjpwYXNz", "Forbidden: expected `Authorization: Bearer <API key or JWT>`"],
      ];
      for (const [authorization, reason] of refusals) {
        const client = t.wsClient(authorization);
        const closed = new Promise<{ code: number; reason: string }>((resolve) =>
          client.on("closed", (e) => resolve(e as never)),
        );
        const sub = collectSubscription(client, EVENTS, { id: videoA.id });
        await expect(sub.done).rejects.toBeDefined();
        expect(await closed, authorization).toMatchObject({ code: 4403, reason });
      }
      const viewer = bearer(await jwt({ tenant_id: "default" }));
      const events = await collectSubscription(t.wsClient(viewer), EVENTS, { id: videoA.id }).done;
      expect(events.at(-1)!.videoEvents.video.status).toBe("READY");
    });
  });

  describe("idempotencyKey", () => {
    it(`the same key returns the same video (also when two calls race); another tenant's key \
space is its own`, async () => {
      const key = { idempotencyKey: "cms-item-42" };
      const [first, second] = await Promise.all([createUpload(t, "once", key), createUpload(t, "once", key)]);
      const again = await createUpload(t, "once", key);
      const id = first.id;
      expect(second.id).toBe(id);
      expect(again.id).toBe(id);
      expect(again.uploadUrl).toContain(id);
      const other = await createUpload(t, "once", key, bearer(keyB));
      expect(other.id).not.toBe(id);
      const count = await t.app.services.db.video.count({ where: { idempotencyKey: "cms-item-42" } });
      expect(count).toBe(2);
    });
  });

  describe("npm run apikey:create / list / revoke", () => {
    it("creates a key for a tenant that then works, lists it, and revokes it", async () => {
      const run = (...args: string[]) =>
        promisify(execFile)(process.execPath, ["scripts/apikey.ts", ...args], {
          env: { ...process.env, DATABASE_URL: t.database.url, LOG_LEVEL: "warn" },
        });
      const created = await run(
        "create",
        "--tenant",
        "tenant-c",
        "--scopes",
        "videos:read,videos:write",
        "--name",
        "cms-c",
      );
      const [meta, secret] = created.stdout.trim().split("\n");
      expect(JSON.parse(meta!)).toMatchObject({ tenant: "tenant-c", scopes: ["videos:read", "videos:write"] });
      expect((await t.gql(VIDEOS, {}, bearer(secret!))).data.videos.edges).toEqual([]);
      expect((await run("list", "--tenant", "tenant-c")).stdout).toMatch(
        /tenant-c {2}active {2}videos:read,videos:write/,
      );
      await run("revoke", JSON.parse(meta!).id);
      expect((await t.gql(VIDEOS, {}, bearer(secret!))).errors![0]!.message).toContain("revoked");
      await expect(run("create", "--tenant", "x", "--scopes", "videos:raed")).rejects.toThrow(
        /Unknown scope\(s\): videos:raed/,
      );
    });
  });

  it("the admin key used by the other tests has every scope", async () => {
    expect(ADMIN_AUTH.authorization).toMatch(/^Bearer vg_/);
    expect((await t.gql(WEBHOOK_ENDPOINTS)).errors).toBeUndefined();
  });
});

describe("the first admin key", () => {
  it("is created once on an empty database, and never in production (it would be printed into the logs)", async () => {
    const database = await createTestDatabase();
    const db = createDb(database.url, { max: 2 });
    try {
      expect(await bootstrapAdminKey(db, undefined, SCOPES, { createIfNone: false })).toBeNull();
      expect(await db.apiKey.count()).toBe(0);
      const [a, b] = await Promise.all([
        bootstrapAdminKey(db, undefined, SCOPES, { createIfNone: true }),
        bootstrapAdminKey(db, undefined, SCOPES, { createIfNone: true }),
      ]);
      expect([a, b].filter(Boolean)).toHaveLength(1);
      expect((a ?? b)!.key.scopes).toEqual([...SCOPES]);
      expect(await bootstrapAdminKey(db, undefined, SCOPES, { createIfNone: true })).toBeNull();
      expect(await db.apiKey.count()).toBe(1);
    } finally {
      await db.$disconnect();
      await database.drop();
    }
  });
});
