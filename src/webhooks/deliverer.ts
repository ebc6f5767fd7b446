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
  timeoutMs: number;
  /** First retry after this; each further one waits twice as long, at most an hour. */
  retryBaseSeconds: number;
  allowPrivateUrls: boolean;
  /** How long a claimed delivery is hidden from other API instances while it is being sent. */
  leaseSeconds?: number;
  batchSize?: number;
}

const RESPONSE_KEEP_BYTES = 2048;

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
    const done = (r: Omit<PostResult, "durationMs" | "permanent">, permanent = false) =>
      resolve({
        ...r,
        durationMs: Math.round(performance.now() - started),
        permanent: permanent || r.statusCode === 410,
      });
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
        timeout: options.timeoutMs,
      },
      (res) => {
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
    req.on("timeout", () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    req.on("error", (err: NodeJS.ErrnoException) =>
      done({ statusCode: null, responseBody: null, error: err.message }, err.code === ADDRESS_NOT_PUBLIC),
    );
    req.end(body);
  });
}

/**
 * Sends queued webhook deliveries: claims due ones with a lease (FOR UPDATE SKIP LOCKED, so API
 * instances share the work and none is sent twice at once), POSTs them signed, records every
 * attempt and retries with exponential back-off until the delivery's `giveUpAt` (24 h). A refusal
 * that another try cannot change (a non-public address, a URL the settings no longer allow, 410
 * Gone) fails the delivery at once.
 */
export function createWebhookDeliverer(options: WebhookDelivererOptions) {
  const { db } = options;
  const lease = options.leaseSeconds ?? Math.ceil(options.timeoutMs / 1000) + 30;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = true;
  let again = false;

  async function deliver(id: string): Promise<void> {
    const delivery = await db.webhookDelivery.findUnique({ where: { id }, include: { endpoint: true } });
    if (!delivery || delivery.status === "DELIVERED") return;
    const body = JSON.stringify(delivery.payload);
    const result = await post(
      delivery.endpoint.url,
      body,
      {
        signature: signWebhook(delivery.endpoint.secret, body),
        "webhook-id": delivery.eventId,
        "webhook-event": delivery.eventType,
      },
      options,
    );
    const ok = result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
    const attemptCount = delivery.attemptCount + 1;
    const error = ok ? null : (result.error ?? `HTTP ${result.statusCode}`);
    const wait = Math.min(3600, options.retryBaseSeconds * 2 ** (attemptCount - 1)) * 1000;
    const next = new Date(Date.now() + wait);
    const giveUp = !ok && (result.permanent || next > delivery.giveUpAt);
    await db.$transaction([
      db.webhookAttempt.create({
        data: {
          deliveryId: id,
          statusCode: result.statusCode,
          responseBody: result.responseBody,
          error,
          durationMs: result.durationMs,
        },
      }),
      db.webhookDelivery.update({
        where: { id },
        data: {
          attemptCount,
          lastStatusCode: result.statusCode,
          lastError: error,
          status: ok ? "DELIVERED" : giveUp ? "FAILED" : "PENDING",
          deliveredAt: ok ? new Date() : null,
          nextAttemptAt: ok || giveUp ? null : next,
        },
      }),
    ]);
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

  async function runOnce(): Promise<number> {
    const claimed = await db.$queryRaw<{ id: string }[]>`
      UPDATE "WebhookDelivery" SET "nextAttemptAt" = now() + make_interval(secs => ${lease})
      WHERE id IN (
        SELECT id FROM "WebhookDelivery"
        WHERE status = 'PENDING' AND "nextAttemptAt" <= now()
        ORDER BY "nextAttemptAt" LIMIT ${options.batchSize ?? 20}
        FOR UPDATE SKIP LOCKED
      ) RETURNING id`;
    await Promise.all(
      claimed.map((c) =>
        deliver(c.id).catch((err) => log.error("webhook delivery crashed", { err, deliveryId: c.id })),
      ),
    );
    return claimed.length;
  }

  async function loop(): Promise<void> {
    do {
      again = false;
      try {
        while (!stopped && (await runOnce()) > 0);
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
    },
  };
}
