import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { isPublicAddress } from "../src/http/outbound-url.ts";
import { createWebhookDeliverer, webhookClaimLeaseSeconds } from "../src/webhooks/deliverer.ts";
import { signWebhook, verifyWebhookSignature } from "../src/webhooks/signature.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { NON_PUBLIC_ADDRESSES, PUBLIC_ADDRESSES } from "./fixtures/non-public-addresses.ts";
import { expectTypename, graphql, type VariablesOf } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const CREATE_ENDPOINT = graphql(`
  mutation($url: String!, $events: [WebhookEventType!]) {
    createWebhookEndpoint(input: { url: $url, events: $events }) {
      __typename
      ... on CreateWebhookEndpointSuccess { secret endpoint { id url events } }
      ... on ValidationError { field message }
    } }`);
const DELIVERIES = graphql(`
  { webhookEndpoints { id deliveries(first: 50) { edges { node {
      id eventId eventType status attemptCount lastStatusCode payload attempts { statusCode responseBody durationMs }
  } } } } }`);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const ENDPOINTS = graphql(`{ webhookEndpoints { id url events enabled } }`);
const ENDPOINT_IDS = graphql(`{ webhookEndpoints { id } }`);
const VARIANT_RATES = graphql(`query($id: ID!) { video(id: $id) { variants { id peakBitRate averageBitRate } } }`);
const RESEND = graphql(`
  mutation($id: ID!) { resendWebhookDelivery(id: $id) { __typename ... on ResendWebhookDeliverySuccess {
    delivery { status } } } }`);
const DELETE_ENDPOINT = graphql(`mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { __typename } }`);

/** An endpoint created through CREATE_ENDPOINT: expects CreateWebhookEndpointSuccess. */
async function createdEndpoint(t: TestApp, variables: VariablesOf<typeof CREATE_ENDPOINT>) {
  const created = (await t.gql(CREATE_ENDPOINT, variables)).data.createWebhookEndpoint;
  return expectTypename(created, "CreateWebhookEndpointSuccess");
}
/** A refusal of CREATE_ENDPOINT: expects a ValidationError. */
async function refusedEndpoint(t: TestApp, url: string) {
  return expectTypename((await t.gql(CREATE_ENDPOINT, { url })).data.createWebhookEndpoint, "ValidationError");
}

interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
  answered: number;
}

/** A CMS's webhook receiver on 127.0.0.1 that answers with `statusFor(request)`. */
async function startReceiver(statusFor: (type: string, id: string, nth: number) => number) {
  const received: Received[] = [];
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const id = String(req.headers["webhook-id"]);
      const nth = (seen.get(id) ?? 0) + 1;
      seen.set(id, nth);
      const answered = statusFor(String(req.headers["webhook-event"]), id, nth);
      received.push({ headers: req.headers, body, answered });
      res.writeHead(answered, { "content-type": "text/plain" });
      res.end(answered < 300 ? "thanks" : "receiver is down");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return { url, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function uploadClip(
  t: TestApp,
  bytes: Uint8Array<ArrayBuffer>,
  title: string,
): Promise<{ id: string; status: string }> {
  const created = await createUpload(t, title);
  const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
  expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: bytes })).status).toBe(200);
  return { id: created.id, status: (await done).at(-1)!.videoEvents.video.status };
}

describe("webhook signatures (the verification helper CMSs copy)", () => {
  const secret = "whsec_test";
  const body = JSON.stringify({ id: "e1", type: "video.ready" });

  it("accepts its own signature within the replay window and refuses everything else", () => {
    const now = Date.now();
    const header = signWebhook(secret, body, Math.floor(now / 1000));
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(() => verifyWebhookSignature({ secret, header, rawBody: body, now })).not.toThrow();
    const cases: [Parameters<typeof verifyWebhookSignature>[0], RegExp][] = [
      [{ secret, header, rawBody: body.replace("e1", "e2"), now }, /does not match/],
      [{ secret: "whsec_other", header, rawBody: body, now }, /does not match/],
      [{ secret, header, rawBody: body, now: now + 301_000 }, /replay window/],
      [{ secret, header, rawBody: body, now: now - 301_000 }, /replay window/],
      [{ secret, header: "v1=abc", rawBody: body, now }, /malformed/],
      [{ secret, header: undefined, rawBody: body, now }, /no Signature header/],
      [
        { secret, header: header.replace(/v1=(.)/, (_, c) => `v1=${c === "0" ? "1" : "0"}`), rawBody: body, now },
        /does not match/,
      ],
    ];
    for (const [input, reason] of cases) expect(() => verifyWebhookSignature(input)).toThrow(reason);
  });

  it("accepts any of several v1 values, so a secret can be rotated", () => {
    const t = Math.floor(Date.now() / 1000);
    const oldSig = signWebhook("whsec_old", body, t).split(",")[1];
    const newSig = signWebhook(secret, body, t).split(",")[1];
    expect(() => verifyWebhookSignature({ secret, header: `t=${t},${oldSig},${newSig}`, rawBody: body })).not.toThrow();
  });

  it("classifies addresses: only public unicast ones may receive webhooks, the same ones as URL imports", () => {
    for (const [address] of NON_PUBLIC_ADDRESSES) expect(isPublicAddress(address), address).toBe(false);
    for (const address of PUBLIC_ADDRESSES) expect(isPublicAddress(address), address).toBe(true);
  });
});

describe("webhooks to a CMS through the public API", () => {
  let t: TestApp;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let clip: Uint8Array<ArrayBuffer>;

  beforeAll(async () => {
    // The receiver fails video.ready twice before it takes it.
    receiver = await startReceiver((type, _id, nth) => (type === "video.ready" && nth <= 2 ? 500 : 200));
    t = await startTestApp({ env: { WEBHOOK_RETRY_BASE_SECONDS: "0.3" } });
    clip = new Uint8Array(await readFile(await makeClip({ width: 160, height: 90, seconds: 2, audio: true })));
  });
  afterAll(async () => {
    await t?.stop();
    await receiver?.close();
  });

  it("signs every event, retries a failing receiver with the same event id, and records each attempt", async () => {
    const created = await createdEndpoint(t, { url: receiver.url });
    const secret: string = created.secret;
    expect(secret).toMatch(/^whsec_/);
    // The secret is shown once: the endpoint's fields do not have it.
    expect(JSON.stringify((await t.gql(ENDPOINTS)).data)).not.toContain(secret);

    const video = await uploadClip(t, clip, "hooked");
    expect(video.status).toBe("READY");
    await expect
      .poll(
        () =>
          receiver.received.filter((r) => r.headers["webhook-event"] === "video.ready" && r.answered === 200).length,
        { timeout: 20_000 },
      )
      .toBe(1);

    for (const r of receiver.received) {
      expect(() =>
        verifyWebhookSignature({ secret, header: String(r.headers.signature), rawBody: r.body }),
      ).not.toThrow();
      const body = JSON.parse(r.body);
      expect(body.id).toBe(r.headers["webhook-id"]);
      expect(body.type).toBe(r.headers["webhook-event"]);
    }
    const taken = receiver.received.filter((r) => r.answered === 200).map((r) => JSON.parse(r.body));
    expect(taken.map((b) => b.type).sort()).toEqual([
      "variant.ready",
      "variant.ready",
      "video.playable",
      "video.ready",
    ]);
    expect(new Set(taken.map((b) => b.id)).size).toBe(taken.length);
    const ready = taken.find((b) => b.type === "video.ready")!;
    expect(ready.data.video).toMatchObject({ id: video.id, status: "READY", playable: true });
    // Each variant.ready says what its rendition carries, as GraphQL's Variant does.
    const variants = (await t.gql(VARIANT_RATES, { id: video.id })).data.video!.variants;
    for (const hook of taken.filter((b) => b.type === "variant.ready")) {
      const variant = variants.find((v) => v.id === hook.data.variant.id)!;
      expect(variant.averageBitRate).toBeGreaterThan(0);
      expect(hook.data.variant).toMatchObject({
        peakBitRate: variant.peakBitRate,
        averageBitRate: variant.averageBitRate,
      });
    }
    const readyTries = receiver.received.filter((r) => r.headers["webhook-event"] === "video.ready");
    expect(readyTries.map((r) => r.answered)).toEqual([500, 500, 200]);
    expect(new Set(readyTries.map((r) => r.headers["webhook-id"]))).toEqual(new Set([ready.id]));

    // The receiver has answered; the API records the answer just after, so read until it has.
    const readyDeliveryNow = async () =>
      (await t.gql(DELIVERIES)).data.webhookEndpoints[0]!.deliveries.edges.map((e) => e.node).find(
        (d) => d.eventType === "VIDEO_READY",
      );
    await expect.poll(async () => (await readyDeliveryNow())?.status, { timeout: 10_000 }).toBe("DELIVERED");
    const readyDelivery = (await readyDeliveryNow())!;
    expect(readyDelivery).toMatchObject({
      eventId: ready.id,
      status: "DELIVERED",
      attemptCount: 3,
      lastStatusCode: 200,
    });
    expect(readyDelivery.attempts.map((a) => [a.statusCode, a.responseBody])).toEqual([
      [500, "receiver is down"],
      [500, "receiver is down"],
      [200, "thanks"],
    ]);
    expect(JSON.parse(readyDelivery.payload)).toEqual(ready);
    // Its times are instants: read back, they are now, not off by the server's time zone.
    const row = await t.app.services.db.webhookDelivery.findUniqueOrThrow({
      where: { id: readyDelivery.id },
      include: { attempts: true },
    });
    expect(Math.abs(row.deliveredAt!.getTime() - Date.now())).toBeLessThan(60_000);
    for (const a of row.attempts) expect(Math.abs(a.at.getTime() - Date.now())).toBeLessThan(60_000);

    // Re-sent on request, with the same event id, so the CMS can dedupe it.
    const before = receiver.received.length;
    const resent = await t.gql(RESEND, { id: readyDelivery.id });
    expect(resent.data.resendWebhookDelivery.__typename).toBe("ResendWebhookDeliverySuccess");
    await expect.poll(() => receiver.received.length, { timeout: 10_000 }).toBe(before + 1);
    expect(receiver.received.at(-1)!.headers["webhook-id"]).toBe(ready.id);
  });

  it(`a receiver answering 410 Gone ends the delivery at once; other errors are retried until the \
window closes`, async () => {
    const gone = await startReceiver(() => 410);
    const down = await startReceiver(() => 503);
    try {
      const goneId = (await createdEndpoint(t, { url: gone.url, events: ["JOB_FAILED"] })).endpoint.id;
      const downId = (await createdEndpoint(t, { url: down.url, events: ["JOB_FAILED"] })).endpoint.id;
      const goneDelivery = await queueDelivery(t, goneId, 3600_000);
      const downDelivery = await queueDelivery(t, downId, 1500);
      t.app.services.webhooks.kick();
      const [goneFinal, downFinal] = [await settled(t, goneDelivery.id), await settled(t, downDelivery.id)];
      expect(goneFinal.attempts.map((a) => a.statusCode)).toEqual([410]);
      expect(gone.received).toHaveLength(1);
      expect(downFinal.attempts.length).toBeGreaterThanOrEqual(2);
      expect(downFinal.attempts.every((a) => a.statusCode === 503)).toBe(true);
      expect(down.received).toHaveLength(downFinal.attempts.length);
    } finally {
      await gone.close();
      await down.close();
      await t.app.services.db.webhookEndpoint.deleteMany({ where: { url: { in: [gone.url, down.url] } } });
    }
  });

  it("sends only the event types an endpoint asked for: a failed video reaches a failures-only endpoint", async () => {
    const failures = await startReceiver(() => 204);
    try {
      const created = await createdEndpoint(t, { url: failures.url, events: ["VIDEO_FAILED", "JOB_FAILED"] });
      expect(created.endpoint.events).toEqual(["VIDEO_FAILED", "JOB_FAILED"]);
      const good = await uploadClip(t, clip, "fine");
      expect(good.status).toBe("READY");
      const bad = await uploadClip(
        t,
        new TextEncoder().encode("this is not a video at all\n".repeat(100)) as Uint8Array<ArrayBuffer>,
        "broken",
      );
      expect(bad.status).toBe("FAILED");
      await expect.poll(() => failures.received.length, { timeout: 10_000 }).toBe(2);
      const bodies = failures.received.map((r) => JSON.parse(r.body));
      expect(bodies.map((b) => b.type).sort()).toEqual(["job.failed", "video.failed"]);
      expect(bodies.every((b) => (b.data.video?.id ?? b.data.job?.videoId) === bad.id)).toBe(true);
      expect(bodies.find((b) => b.type === "video.failed").data.video.error).toMatch(/not a video|Invalid data/i);
    } finally {
      await failures.close();
    }
  });
});

/** A delivery of a made-up event, set up directly in the database: the event itself is not under test. */
function queueDelivery(t: TestApp, endpointId: string, giveUpInMs: number) {
  return t.app.services.db.webhookDelivery.create({
    data: {
      eventId: crypto.randomUUID(),
      endpointId,
      eventType: "video.ready",
      payload: { id: "x" },
      giveUpAt: new Date(Date.now() + giveUpInMs),
    },
  });
}

/**
 * An endpoint stored as it is, past the registration checks (one registered before a rule existed, or a name whose DNS
 * changed since).
 */
async function storedEndpoint(t: TestApp, url: string): Promise<string> {
  const tenant = await t.app.services.db.tenant.findUniqueOrThrow({ where: { name: "default" } });
  return (
    await t.app.services.db.webhookEndpoint.create({
      data: { tenantId: tenant.id, url, secret: "whsec_x", events: [] },
    })
  ).id;
}

async function settled(t: TestApp, deliveryId: string) {
  await expect
    .poll(
      async () => (await t.app.services.db.webhookDelivery.findUniqueOrThrow({ where: { id: deliveryId } })).status,
      { timeout: 15_000 },
    )
    .toBe("FAILED");
  return t.app.services.db.webhookDelivery.findUniqueOrThrow({
    where: { id: deliveryId },
    include: { attempts: true },
  });
}

/** The API's warning lines about one delivery, read from its log on stderr while `run` runs. */
async function warningsAbout(deliveryId: string, run: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    lines.push(
      ...String(chunk)
        .split("\n")
        .filter((l) => l.includes(deliveryId) && l.includes('"severity":"WARNING"')),
    );
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  try {
    await run();
  } finally {
    process.stderr.write = write;
  }
  return lines;
}

describe("webhook URLs are checked like any request the service makes for a tenant", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      worker: false,
      env: {
        WEBHOOK_ALLOW_PRIVATE_URLS: "false",
        WEBHOOK_RETRY_BASE_SECONDS: "0.2",
        WEBHOOK_RETRY_HOURS: "1",
        WEBHOOK_MAX_ENDPOINTS_PER_TENANT: "3",
      },
    });
  });
  afterAll(() => t?.stop());

  it("refuses http, credentials in the URL and non-URLs at registration", async () => {
    for (const url of [
      "http://cms.example.com/hooks",
      "https://user:pw@cms.example.com/hooks",
      "not a url",
      "ftp://cms.example.com/",
    ]) {
      const res = (await t.gql(CREATE_ENDPOINT, { url })).data.createWebhookEndpoint;
      expect(res, url).toMatchObject({ __typename: "ValidationError", field: "url" });
    }
    // http says why, and which setting allows it in development.
    const http = await refusedEndpoint(t, "http://cms.example.com/hooks");
    expect(http.message).toMatch(/^Not usable for webhooks: use an https URL, not http:; webhooks go only to https/);
    expect(http.message).toContain("WEBHOOK_ALLOW_PRIVATE_URLS=true");
    const credentials = await refusedEndpoint(t, "https://u:p@cms.example.com/");
    expect(credentials.message).toBe("Not usable for webhooks: credentials in the URL are not allowed");
  });

  it("refuses at registration a host that is, or resolves now to, a non-public address", async () => {
    const cases: [string, string][] = [
      ["https://127.0.0.1/hooks", "refused: 127.0.0.1 is not a public address"],
      ["https://[::7f00:1]/hooks", "refused: ::7f00:1 is not a public address"],
      ["https://[::ffff:a00:1]/hooks", "refused: ::ffff:a00:1 is not a public address"],
      ["https://[64:ff9b::a9fe:a9fe]/hooks", "refused: 64:ff9b::a9fe:a9fe is not a public address"],
      ["https://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is not a public address"],
      ["https://localhost:8443/hooks", "refused: localhost is not a public address"],
    ];
    for (const [url, reason] of cases) {
      const res = await refusedEndpoint(t, url);
      expect(res, url).toMatchObject({ __typename: "ValidationError", field: "url" });
      expect(res.message, url).toContain(reason);
      expect(res.message, url).toContain("WEBHOOK_ALLOW_PRIVATE_URLS=true");
    }
    expect((await t.gql(ENDPOINT_IDS)).data.webhookEndpoints).toEqual([]);
    // A public literal, and a name that does not resolve yet (delivery checks it again), are taken.
    for (const url of ["https://93.184.216.34/hooks", "https://cms.invalid/hooks"]) {
      expect((await t.gql(CREATE_ENDPOINT, { url })).data.createWebhookEndpoint.__typename, url).toBe(
        "CreateWebhookEndpointSuccess",
      );
    }
  });

  it("caps a tenant's endpoints at WEBHOOK_MAX_ENDPOINTS_PER_TENANT, also when created at once", async () => {
    const db = t.app.services.db;
    await db.webhookEndpoint.deleteMany({});
    const created = await Promise.all(
      Array.from({ length: 5 }, (_, i) => t.gql(CREATE_ENDPOINT, { url: `https://93.184.216.34/hooks/${i}` })),
    );
    const kinds = created.map((r) => r.data.createWebhookEndpoint.__typename).sort();
    expect(kinds).toEqual([
      "CreateWebhookEndpointSuccess",
      "CreateWebhookEndpointSuccess",
      "CreateWebhookEndpointSuccess",
      "ValidationError",
      "ValidationError",
    ]);
    const answers = created.map((r) => r.data.createWebhookEndpoint);
    expect(answers.find((a) => a.__typename === "ValidationError")!.message).toBe(
      "A tenant has at most 3 webhook endpoints; delete one first",
    );
    expect(await db.webhookEndpoint.count()).toBe(3);
    const first = answers.find((a) => a.__typename === "CreateWebhookEndpointSuccess")!.endpoint.id;
    await t.gql(DELETE_ENDPOINT, { id: first });
    expect(
      (await t.gql(CREATE_ENDPOINT, { url: "https://93.184.216.34/hooks/again" })).data.createWebhookEndpoint
        .__typename,
    ).toBe("CreateWebhookEndpointSuccess");
    await db.webhookEndpoint.deleteMany({});
  });

  it(`a delivery to an IPv4-compatible literal of loopback, [::7f00:1], fails at once: one attempt, one \
warning, no retries`, async () => {
    const endpointId = await storedEndpoint(t, "https://[::7f00:1]:9/hooks");
    const delivery = await queueDelivery(t, endpointId, 3600_000);
    let final!: Awaited<ReturnType<typeof settled>>;
    const warnings = await warningsAbout(delivery.id, async () => {
      t.app.services.webhooks.kick();
      final = await settled(t, delivery.id);
      await new Promise((r) => setTimeout(r, 800));
    });
    expect(final.lastError).toBe("refused: ::7f00:1 is not a public address");
    expect(final.nextAttemptAt).toBeNull();
    expect(
      (await t.app.services.db.webhookAttempt.findMany({ where: { deliveryId: delivery.id } })).map((a) => [
        a.statusCode,
        a.error,
      ]),
    ).toEqual([[null, "refused: ::7f00:1 is not a public address"]]);
    expect(warnings).toHaveLength(1);
  });

  it(`a host name that resolves to a private address is refused after DNS resolution, before connecting, \
and not retried`, async () => {
    const endpointId = await storedEndpoint(t, "https://localhost:9/hooks");
    const delivery = await queueDelivery(t, endpointId, 3600_000);
    t.app.services.webhooks.kick();
    const final = await settled(t, delivery.id);
    // Not the address it resolved to: that would tell a tenant the operator's internal DNS.
    expect(final.lastError).toBe("refused: localhost is not a public address");
    expect(final.attempts).toHaveLength(1);
  });

  it(`a stored URL the settings no longer allow (http here, or no URL at all) fails at once instead of crashing \
the deliverer`, async () => {
    for (const [url, reason] of [
      ["http://93.184.216.34/hooks", "refused: use an https URL, not http:"],
      ["not a url", "refused: not a URL"],
    ]) {
      const delivery = await queueDelivery(t, await storedEndpoint(t, url!), 3600_000);
      t.app.services.webhooks.kick();
      const final = await settled(t, delivery.id);
      expect(final.lastError, url).toBe(reason);
      expect(final.attempts, url).toHaveLength(1);
    }
  });
});

/**
 * A receiver that answers 200 at once and then sends its body a byte a second, never silent long
 * enough for a socket timeout. Counts the requests open per event id.
 */
async function startTricklingReceiver() {
  const open = new Map<string, number>();
  let mostOpenForOneEvent = 0;
  const requests: { id: string; at: number; closedAt: number | null }[] = [];
  const server: Server = createServer((req, res) => {
    const id = String(req.headers["webhook-id"]);
    const request = { id, at: Date.now(), closedAt: null as number | null };
    requests.push(request);
    open.set(id, (open.get(id) ?? 0) + 1);
    mostOpenForOneEvent = Math.max(mostOpenForOneEvent, open.get(id)!);
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "content-length": "100000" });
    const drip = setInterval(() => res.write("."), 1000);
    res.on("close", () => {
      clearInterval(drip);
      request.closedAt = Date.now();
      open.set(id, open.get(id)! - 1);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    requests,
    openNow: () => [...open.values()].reduce((a, b) => a + b, 0),
    mostOpenForOneEvent: () => mostOpenForOneEvent,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

async function endpointOfNewTenant(t: TestApp, url: string): Promise<string> {
  const tenant = await t.app.services.db.tenant.create({ data: { name: `tenant-${crypto.randomUUID()}` } });
  return (
    await t.app.services.db.webhookEndpoint.create({
      data: { tenantId: tenant.id, url, secret: "whsec_x", events: [] },
    })
  ).id;
}

describe("a webhook receiver that answers slowly", () => {
  let t: TestApp;
  let slow: Awaited<ReturnType<typeof startTricklingReceiver>>;
  beforeAll(async () => {
    slow = await startTricklingReceiver();
    t = await startTestApp({ worker: false, env: { WEBHOOK_TIMEOUT_MS: "2000", WEBHOOK_RETRY_BASE_SECONDS: "1" } });
  });
  afterAll(async () => {
    await slow?.close();
    await t?.stop();
  });

  it("the claim lease outlasts the deadline of a whole delivery and the recording of its attempt", () => {
    for (const ms of [100, 2000, 10_000, 60_000, 600_000]) {
      expect(webhookClaimLeaseSeconds(ms) * 1000, `${ms}`).toBeGreaterThanOrEqual(ms + 30_000);
    }
  });

  it(`a receiver that sends its headers and then trickles its body is cut off at WEBHOOK_TIMEOUT_MS, the \
attempt recorded as timed out`, async () => {
    const endpointId = await endpointOfNewTenant(t, slow.url);
    const delivery = await queueDelivery(t, endpointId, 3600_000);
    t.app.services.webhooks.kick();
    const attemptOf = () => t.app.services.db.webhookAttempt.findFirst({ where: { deliveryId: delivery.id } });
    await expect.poll(attemptOf, { timeout: 8000 }).toBeTruthy();
    const attempt = (await attemptOf())!;
    expect(attempt.error).toBe("timed out: no complete answer within 2000 ms");
    expect(attempt.statusCode).toBe(200);
    expect(attempt.durationMs).toBeGreaterThanOrEqual(1900);
    expect(attempt.durationMs).toBeLessThan(3500);
    const first = slow.requests.find((r) => r.id === delivery.eventId)!;
    await expect.poll(() => first.closedAt, { timeout: 2000 }).not.toBeNull();
    const after = await t.app.services.db.webhookDelivery.findUniqueOrThrow({ where: { id: delivery.id } });
    expect(after).toMatchObject({ status: "PENDING", attemptCount: expect.any(Number) });
    expect(after.lastError).toMatch(/^timed out/);
    await t.app.services.db.webhookEndpoint.delete({ where: { id: endpointId } });
  });

  it(`a second deliverer on the same database never sends a delivery that is still in flight (observed past the \
40 s a lease once lasted)`, async () => {
    const db = t.app.services.db;
    const own = await startTricklingReceiver();
    const second = createWebhookDeliverer({ db, timeoutMs: 2000, retryBaseSeconds: 1, allowPrivateUrls: true });
    const endpointId = await endpointOfNewTenant(t, own.url);
    const delivery = await queueDelivery(t, endpointId, 3600_000);
    second.start(200);
    t.app.services.webhooks.kick();
    try {
      await new Promise((r) => setTimeout(r, 36_000));
      const tries = own.requests.filter((r) => r.id === delivery.eventId);
      expect(tries.length).toBeGreaterThanOrEqual(2);
      expect(own.mostOpenForOneEvent()).toBe(1);
      for (const r of tries.slice(0, -1)) expect(r.closedAt! - r.at).toBeLessThan(3500);
    } finally {
      await own.close();
      await db.webhookEndpoint.delete({ where: { id: endpointId } });
      await second.stop();
    }
  }, 60_000);
});

describe("webhook endpoints are delivered independently", () => {
  let t: TestApp;
  let slow: Awaited<ReturnType<typeof startTricklingReceiver>>;
  let healthy: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    slow = await startTricklingReceiver();
    healthy = await startReceiver(() => 200);
    t = await startTestApp({ worker: false, env: { WEBHOOK_TIMEOUT_MS: "30000" } });
  });
  afterAll(async () => {
    // Closing the trickling receiver first ends the deliveries it holds.
    await slow?.close();
    await healthy?.close();
    await t?.stop();
  });

  it(`one tenant's receiver trickling its answers does not delay another tenant's deliveries`, async () => {
    const slowEndpoint = await endpointOfNewTenant(t, slow.url);
    const healthyEndpoint = await endpointOfNewTenant(t, healthy.url);
    for (let i = 0; i < 25; i++) await queueDelivery(t, slowEndpoint, 3600_000);
    t.app.services.webhooks.kick();
    await expect.poll(() => slow.openNow(), { timeout: 5000 }).toBeGreaterThan(0);
    const queuedAt = Date.now();
    const wanted = await Promise.all([1, 2, 3].map(() => queueDelivery(t, healthyEndpoint, 3600_000)));
    t.app.services.webhooks.kick();
    await expect.poll(() => healthy.received.length, { timeout: 10_000 }).toBe(3);
    expect(Date.now() - queuedAt).toBeLessThan(2000);
    expect(new Set(healthy.received.map((r) => r.headers["webhook-id"]))).toEqual(
      new Set(wanted.map((d) => d.eventId)),
    );
    // The slow receiver still holds its deliveries, at most a few of them at once.
    expect(slow.openNow()).toBeGreaterThan(0);
    expect(slow.openNow()).toBeLessThanOrEqual(4);
  });
});

describe("the deliverer's claims", () => {
  // A database of its own and no API: the deliverer under test is the only one claiming.
  let database: TestDatabase;
  let db: Db;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    receiver = await startReceiver(() => 200);
    database = await createTestDatabase();
    db = createDb(database.url);
  });
  afterAll(async () => {
    await receiver?.close();
    await db?.$disconnect();
    await database?.drop();
  });

  /** The database, counting the calls of one of its raw methods (each waiting for `before` first). */
  function counted(method: "$queryRaw" | "$executeRaw", before?: (call: number) => Promise<unknown> | undefined) {
    const counter = { calls: 0, db };
    counter.db = new Proxy(db, {
      get(target, prop) {
        const value = Reflect.get(target, prop);
        if (prop === method)
          return async (...args: unknown[]) => {
            counter.calls++;
            await before?.(counter.calls);
            return value.apply(target, args);
          };
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    return counter;
  }

  /** An endpoint of the receiver with `count` deliveries due. */
  async function endpointWithDeliveries(count: number) {
    const { id: endpointId } = await db.webhookEndpoint.create({
      data: { tenantId: DEFAULT_TENANT_ID, url: receiver.url, secret: "whsec_x", events: [] },
    });
    const queued = await Promise.all(
      Array.from({ length: count }, () =>
        db.webhookDelivery.create({
          data: {
            eventId: crypto.randomUUID(),
            endpointId,
            eventType: "video.ready",
            payload: { id: "x" },
            giveUpAt: new Date(Date.now() + 3600_000),
          },
        }),
      ),
    );
    return { endpointId, queued };
  }

  it("a burst of deliveries below every limit takes one claim: none to find that no more are due", async () => {
    const claims = counted("$queryRaw");
    const deliverer = createWebhookDeliverer({
      db: claims.db,
      timeoutMs: 5000,
      retryBaseSeconds: 1,
      allowPrivateUrls: true,
    });
    const { endpointId, queued } = await endpointWithDeliveries(3);
    deliverer.start(3_600_000); // no poll: only the kick at start
    try {
      await expect
        .poll(async () => db.webhookDelivery.count({ where: { endpointId, status: "DELIVERED" } }), { timeout: 10_000 })
        .toBe(3);
      await new Promise((r) => setTimeout(r, 300));
      expect(new Set(receiver.received.map((r) => r.headers["webhook-id"]))).toEqual(
        new Set(queued.map((d) => d.eventId)),
      );
      // Three under the endpoint's 4 and the instance's 32: the first claim took them all. Before, a
      // second claim found none, and each delivery's end claimed again.
      expect(claims.calls).toBe(1);
    } finally {
      await deliverer.stop();
    }
  });

  it("deliveries that end while one's outcome is written are recorded together, each with its attempt", async () => {
    // The first write is slow: the other deliveries end meanwhile.
    const writes = counted("$executeRaw", (n) => (n === 1 ? new Promise((r) => setTimeout(r, 500)) : undefined));
    const deliverer = createWebhookDeliverer({
      db: writes.db,
      timeoutMs: 5000,
      retryBaseSeconds: 1,
      allowPrivateUrls: true,
      maxInFlightPerEndpoint: 8,
    });
    const { endpointId, queued } = await endpointWithDeliveries(8);
    deliverer.start(3_600_000);
    try {
      await expect
        .poll(async () => db.webhookDelivery.count({ where: { endpointId, status: "DELIVERED" } }), { timeout: 10_000 })
        .toBe(8);
      const rows = await db.webhookDelivery.findMany({ where: { endpointId }, include: { attempts: true } });
      expect(
        rows.map((r) => [r.attemptCount, r.attempts.length, r.attempts[0]!.statusCode, r.deliveredAt !== null]),
      ).toEqual(queued.map(() => [1, 1, 200, true]));
      // The first alone, the seven that ended while it was written in one more (before, one each).
      expect(writes.calls).toBeLessThanOrEqual(3);
    } finally {
      await deliverer.stop();
    }
  });
});
