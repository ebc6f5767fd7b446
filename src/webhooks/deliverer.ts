import { randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { Db } from "../db/client.ts";
import { log } from "../log.ts";
import { webhookDeliveries } from "../metrics.ts";
import { ADDRESS_NOT_PUBLIC, guardedLookup, literalAddressProblem } from "../http/outbound-url.ts";
import { checkWebhookUrl } from "./endpoint-url.ts";
import { signWebhook } from "./signature.ts";

export interface WebhookDelivererOptions {
  db: Db;
  /** The whole exchange of one delivery: connecting, the answer's headers and its body (WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  /** First retry after this; each further one waits twice as long, at most an hour. */
  retryBaseSeconds: number;
  allowPrivateUrls: boolean;
  /** Deliveries this instance sends at once, over all endpoints. */
  maxInFlight?: number;
  /** Deliveries this instance sends at once to one endpoint, so a slow receiver holds only these. */
  maxInFlightPerEndpoint?: number;
}

/** A delivery as its claim returns it: the row and its endpoint's URL and secret. */
interface ClaimedDelivery {
  id: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  payload: unknown;
  attemptCount: number;
  giveUpAt: Date;
  url: string;
  secret: string;
}

/** Time a claimed delivery has, beyond its deadline, to record its attempt. */
const RECORDING_MARGIN_SECONDS = 30;

/**
 * How long a claimed delivery is hidden from other deliverers (other API instances). Longer than any
 * delivery can take, since the deadline bounds the whole exchange; else a second instance would send
 * it again while the first still waits for its answer.
 */
export function webhookClaimLeaseSeconds(timeoutMs: number): number {
  return Math.ceil(timeoutMs / 1000) + RECORDING_MARGIN_SECONDS;
}

const RESPONSE_KEEP_BYTES = 2048;

/** Attempts one statement records at most; more wait for the next. */
const MAX_OUTCOMES_PER_STATEMENT = 100;

/** A delivery's attempt and its new state, waiting to be recorded. */
interface Outcome {
  deliveryId: string;
  at: Date;
  statusCode: number | null;
  responseBody: string | null;
  error: string | null;
  durationMs: number;
  attemptCount: number;
  status: "DELIVERED" | "FAILED" | "PENDING";
  nextAttemptAt: Date | null;
}

interface PostResult {
  statusCode: number | null;
  responseBody: string | null;
  error: string | null;
  durationMs: number;
  /** Trying again cannot help: the address or URL is refused, or the receiver answered 410 Gone. */
  permanent: boolean;
}

/** One POST, to the address the guarded lookup checked, no redirects followed. */
function post(
  rawUrl: string,
  body: string,
  headers: Record<string, string>,
  options: WebhookDelivererOptions,
): Promise<PostResult> {
  const started = performance.now();
  const refusal = (error: string): Promise<PostResult> =>
    Promise.resolve({ statusCode: null, responseBody: null, error, durationMs: 0, permanent: true });
  const url = checkWebhookUrl(rawUrl, options.allowPrivateUrls);
  if (typeof url === "string") return refusal(`refused: ${url}`);
  const literal = literalAddressProblem(url, options.allowPrivateUrls);
  if (literal) return refusal(literal);
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    let answered: number | null = null;
    const done = (r: Omit<PostResult, "durationMs" | "permanent">, permanent = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve({
        ...r,
        durationMs: Math.round(performance.now() - started),
        permanent: permanent || (r.error === null && r.statusCode === 410),
      });
    };
    // One deadline for the whole exchange: a socket timeout only sees silence, and a receiver that
    // sends its answer a byte at a time is never silent.
    const deadline = setTimeout(() => {
      const error = `timed out: no complete answer within ${options.timeoutMs} ms`;
      done({ statusCode: answered, responseBody: null, error });
      req.destroy(new Error(error));
    }, options.timeoutMs);
    const req = client.request(
      url,
      {
        method: "POST",
        headers: {
          ...headers,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "user-agent": "videograph-webhooks/1",
        },
        lookup: guardedLookup(options.allowPrivateUrls) as never,
      },
      (res) => {
        answered = res.statusCode ?? null;
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on("data", (c: Buffer) => {
          if (kept < RESPONSE_KEEP_BYTES) chunks.push(c);
          kept += c.length;
        });
        res.on("end", () =>
          done({
            statusCode: res.statusCode ?? null,
            responseBody: Buffer.concat(chunks).subarray(0, RESPONSE_KEEP_BYTES).toString("utf8"),
            error: null,
          }),
        );
        res.on("error", (err) => done({ statusCode: res.statusCode ?? null, responseBody: null, error: err.message }));
      },
    );
    req.on("error", (err: NodeJS.ErrnoException) =>
      done({ statusCode: null, responseBody: null, error: err.message }, err.code === ADDRESS_NOT_PUBLIC),
    );
    req.end(body);
  });
}

/**
 * Sends queued webhook deliveries: claims due ones with a lease (FOR UPDATE SKIP LOCKED, so instances share the
 * work), POSTs them signed, records every attempt and retries with back-off until `giveUpAt`; a refusal no retry
 * can change fails at once. At most `maxInFlightPerEndpoint` per endpoint, so a slow receiver delays only its own.
 */
export function createWebhookDeliverer(options: WebhookDelivererOptions) {
  const { db } = options;
  const lease = webhookClaimLeaseSeconds(options.timeoutMs);
  const maxInFlight = options.maxInFlight ?? 32;
  const perEndpoint = options.maxInFlightPerEndpoint ?? 4;
  /** Deliveries being sent by this instance, by id, with their endpoint. */
  const inFlight = new Map<string, { endpointId: string; done: Promise<void> }>();
  const outcomes = createOutcomeWriter(db);
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = true;
  let again = false;

  async function deliver(delivery: ClaimedDelivery): Promise<void> {
    const { id } = delivery;
    const body = JSON.stringify(delivery.payload);
    const result = await post(
      delivery.url,
      body,
      {
        signature: signWebhook(delivery.secret, body),
        "webhook-id": delivery.eventId,
        "webhook-event": delivery.eventType,
      },
      options,
    );
    const ok =
      result.error === null && result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
    const attemptCount = delivery.attemptCount + 1;
    const error = ok ? null : (result.error ?? `HTTP ${result.statusCode}`);
    const wait = Math.min(3600, options.retryBaseSeconds * 2 ** (attemptCount - 1)) * 1000;
    const next = new Date(Date.now() + wait);
    const giveUp = !ok && (result.permanent || next > delivery.giveUpAt);
    const status = ok ? "DELIVERED" : giveUp ? "FAILED" : "PENDING";
    await outcomes.record({
      deliveryId: id,
      at: new Date(),
      statusCode: result.statusCode,
      responseBody: result.responseBody,
      error,
      durationMs: result.durationMs,
      attemptCount,
      status,
      nextAttemptAt: ok || giveUp ? null : next,
    });
    webhookDeliveries.inc({ outcome: ok ? "delivered" : giveUp ? "abandoned" : "failed" });
    if (!ok)
      log.warn("webhook delivery failed", {
        deliveryId: id,
        attempt: attemptCount,
        error,
        giveUp,
        permanent: result.permanent,
      });
  }

  /** Claims due deliveries for the `free` slots: none of an endpoint already at its limit here. */
  async function claim(free: number): Promise<ClaimedDelivery[]> {
    if (free <= 0) return [];
    const busy = sendingByEndpoint();
    const endpoints = [...busy.keys()];
    const counts = endpoints.map((e) => busy.get(e)!);
    const full = endpoints.filter((e) => atLimit(e, busy));
    // The claimed rows come back with what sending them takes (their endpoint's URL and secret).
    return db.$queryRaw<ClaimedDelivery[]>`
      WITH due AS (
        SELECT id, "endpointId", "nextAttemptAt" FROM "WebhookDelivery"
        WHERE status = 'PENDING' AND "nextAttemptAt" <= now() AND "endpointId" <> ALL (${full}::uuid[])
        ORDER BY "nextAttemptAt" LIMIT ${free * perEndpoint}
        FOR UPDATE SKIP LOCKED
      ), ranked AS (
        SELECT due.id, row_number() OVER (PARTITION BY due."endpointId" ORDER BY due."nextAttemptAt") AS n,
          COALESCE(busy.count, 0) AS sending
        FROM due LEFT JOIN unnest(${endpoints}::uuid[], ${counts}::int[]) AS busy(endpoint, count)
          ON busy.endpoint = due."endpointId"
      ), chosen AS (
        SELECT id FROM ranked WHERE n + sending <= ${perEndpoint} ORDER BY n LIMIT ${free}
      )
      UPDATE "WebhookDelivery" AS d SET "nextAttemptAt" = now() + make_interval(secs => ${lease})
      FROM "WebhookEndpoint" AS e
      WHERE d.id IN (SELECT id FROM chosen) AND e.id = d."endpointId"
      RETURNING d.id, d."endpointId", d."eventId", d."eventType", d.payload, d."attemptCount", d."giveUpAt", e.url, e.secret`;
  }

  /**
   * Starts the claimed deliveries without waiting for them; true when another claim may find more:
   * this one filled every free slot, or it filled an endpoint's, whose other due deliveries hid
   * later ones of other endpoints from it. Otherwise no more were due (a claim that finds none is
   * what every burst of deliveries would end with).
   */
  async function runOnce(): Promise<boolean> {
    const free = maxInFlight - inFlight.size;
    const claimed = await claim(free);
    for (const c of claimed) {
      const done = deliver(c)
        .catch((err) => log.error("webhook delivery crashed", { err, deliveryId: c.id }))
        .finally(() => {
          // Its slot may let a due delivery go that waited for one: when this instance or this
          // endpoint was at its limit. Otherwise nothing due was left unclaimed (deliveries queued
          // since kick the deliverer themselves; retries falling due wait for the poll).
          const wasLimit = inFlight.size >= maxInFlight || atLimit(c.endpointId, sendingByEndpoint());
          inFlight.delete(c.id);
          if (wasLimit) kick();
        });
      inFlight.set(c.id, { endpointId: c.endpointId, done });
    }
    if (claimed.length === 0) return false;
    if (claimed.length >= free) return true;
    const busy = sendingByEndpoint();
    return claimed.some((c) => atLimit(c.endpointId, busy));
  }

  /** The deliveries this instance is sending, counted by endpoint. */
  function sendingByEndpoint(): Map<string, number> {
    const busy = new Map<string, number>();
    for (const d of inFlight.values()) busy.set(d.endpointId, (busy.get(d.endpointId) ?? 0) + 1);
    return busy;
  }

  function atLimit(endpointId: string, busy: Map<string, number>): boolean {
    return (busy.get(endpointId) ?? 0) >= perEndpoint;
  }

  async function loop(): Promise<void> {
    do {
      again = false;
      try {
        while (!stopped && inFlight.size < maxInFlight && (await runOnce()));
      } catch (err) {
        if (!stopped) log.error("webhook deliverer failed", { err });
      }
    } while (again && !stopped);
  }

  function kick(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = loop().finally(() => (running = null));
  }

  return {
    kick,
    start(pollMs = 1000): void {
      stopped = false;
      timer = setInterval(kick, pollMs);
      timer.unref();
      kick();
    },
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
      // Each ends by its deadline.
      await Promise.all([...inFlight.values()].map((d) => d.done));
    },
  };
}

/**
 * Records deliveries' attempts and new states: each attempt and its delivery's state in one
 * statement (one round trip, one commit), and the outcomes that come while one is written together
 * in the next (an endpoint's deliveries end close together, four at a time by default), so a busy
 * deliverer writes a few statements where it wrote one a delivery; a quiet one writes each at once.
 * A delivery's `record` resolves once its row is written, or rejects with the statement's error
 * (its claim lapses and it is sent again, as when the API dies before recording it).
 */
function createOutcomeWriter(db: Db) {
  let waiting: { outcome: Outcome; resolve: () => void; reject: (err: unknown) => void }[] = [];
  let writing = false;

  async function write(batch: Outcome[]): Promise<void> {
    const column = <K extends keyof Outcome>(key: K) => batch.map((o) => o[key]);
    const iso = (dates: (Date | null)[]) => dates.map((d) => d?.toISOString() ?? null);
    // The deliveries' rows locked in id order, as the progress batch locks its rows, so two
    // instances' statements never wait on each other in a cycle.
    await db.$executeRaw`
      WITH o AS (
        SELECT * FROM unnest(${column("deliveryId")}::uuid[], ${batch.map(() => randomUUID())}::uuid[],
          ${iso(column("at"))}::timestamp(3)[], ${column("statusCode")}::int[], ${column("responseBody")}::text[],
          ${column("error")}::text[], ${column("durationMs")}::int[], ${column("attemptCount")}::int[],
          ${column("status")}::text[], ${iso(column("nextAttemptAt"))}::timestamp(3)[])
          AS o(id, "attemptId", at, "statusCode", "responseBody", error, "durationMs", "attemptCount", status, "nextAttemptAt")
      ), attempt AS (
        INSERT INTO "WebhookAttempt" (id, "deliveryId", at, "statusCode", "responseBody", error, "durationMs")
        SELECT "attemptId", id, at, "statusCode", "responseBody", error, "durationMs" FROM o
      ), locked AS MATERIALIZED (
        SELECT id FROM "WebhookDelivery" WHERE id IN (SELECT id FROM o) ORDER BY id FOR NO KEY UPDATE
      )
      UPDATE "WebhookDelivery" AS d
      SET "attemptCount" = o."attemptCount", "lastStatusCode" = o."statusCode", "lastError" = o.error,
        status = o.status::"WebhookDeliveryStatus", "deliveredAt" = CASE WHEN o.status = 'DELIVERED' THEN o.at END,
        "nextAttemptAt" = o."nextAttemptAt"
      FROM locked, o WHERE d.id = locked.id AND o.id = locked.id`;
  }

  async function drain(): Promise<void> {
    writing = true;
    while (waiting.length) {
      const batch = waiting.slice(0, MAX_OUTCOMES_PER_STATEMENT);
      waiting = waiting.slice(batch.length);
      try {
        await write(batch.map((w) => w.outcome));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    writing = false;
  }

  return {
    record(outcome: Outcome): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        waiting.push({ outcome, resolve, reject });
        if (!writing) void drain();
      });
    },
  };
}
