// The chaos run's `slow-webhook` fault: a receiver that answers 200 and then sends its body a byte
// every 5 s, registered for the tenant the run uploads as (so every video event goes to it), while a
// healthy receiver of another tenant gets a delivery queued every second and records how long each
// took to arrive. One slow receiver must not delay another tenant's webhooks.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { webhookClaimLeaseSeconds } from "../../src/webhooks/deliverer.ts";
import type { GraphQLResponse } from "./stack.ts";

/** The healthy endpoint's deliveries must arrive within these (from being queued to being received). */
const SLOW_WEBHOOK_P50_BOUND_MS = 2000;
/**
 * Beyond the deliverer's poll, an API restart (api-kill) or a Postgres restart may stand between; a
 * delivery the killed API had in flight is sent again when its claim lease ends (the deadline of the
 * default WEBHOOK_TIMEOUT_MS, 10 s, plus 30 s), so the worst case is that lease and a restart.
 */
const SLOW_WEBHOOK_MAX_BOUND_MS = webhookClaimLeaseSeconds(10_000) * 1000 + 10_000;
const TRICKLE_EVERY_MS = 5000;
const PROBE_EVERY_MS = 1000;
/** Long enough for several of the slow receiver's deliveries to be cut off at WEBHOOK_TIMEOUT_MS (10 s). */
const PROBE_FOR_MS = 60_000;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
}

export async function startSlowWebhookFault(options: {
  databaseUrl: string;
  gql: (query: string, variables?: Record<string, unknown>) => Promise<GraphQLResponse>;
}) {
  const held: { at: number; closedAt: number | null }[] = [];
  const slow = createServer((req, res) => {
    const request = { at: Date.now(), closedAt: null as number | null };
    held.push(request);
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "content-length": "100000" });
    const drip = setInterval(() => res.write("."), TRICKLE_EVERY_MS);
    res.on("close", () => {
      clearInterval(drip);
      request.closedAt = Date.now();
    });
  });
  /** Latency of each probe delivery by its event id, first arrival only. */
  const latencies = new Map<string, number>();
  const healthy = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const id = String(req.headers["webhook-id"]);
      const queuedAt = Number((JSON.parse(body) as { queuedAt?: number }).queuedAt);
      if (!latencies.has(id) && Number.isFinite(queuedAt)) latencies.set(id, Date.now() - queuedAt);
      res.writeHead(204);
      res.end();
    });
  });
  const [slowUrl, healthyUrl] = [await listen(slow), await listen(healthy)];
  const queued = new Set<string>();
  let notQueued = 0;
  let stoppingAt = Number.POSITIVE_INFINITY;
  // A pool, so a Postgres restart during the probe costs a few deliveries, not the rest of them.
  const db = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  db.on("error", () => undefined);

  return {
    /** Registers the slow receiver for the uploading tenant, and a healthy one of another tenant, then probes. */
    async inject(): Promise<string> {
      // Asked again while the API or its database is restarting (another fault).
      for (let tries = 1; ; tries++) {
        const r = await options.gql(
          `mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { __typename ` +
            `... on Error { message } } }`,
          { url: slowUrl },
        );
        if (r.data?.createWebhookEndpoint?.__typename === "CreateWebhookEndpointSuccess") break;
        if (tries >= 30) throw new Error(`the slow endpoint was refused: ${JSON.stringify(r.errors ?? r.data)}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      const tenant = await db.query<{ id: string }>(
        `INSERT INTO "Tenant" (id, name) VALUES (gen_random_uuid(), 'chaos-healthy-webhooks')
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
      );
      const endpoint = await db.query<{ id: string }>(
        `INSERT INTO "WebhookEndpoint" (id, "tenantId", url, secret, events)
         VALUES (gen_random_uuid(), $1, $2, 'whsec_chaos', '{}') RETURNING id`,
        [tenant.rows[0]!.id, healthyUrl],
      );
      // A row as the emitter writes it; the deliverer finds it at its next poll (every second).
      const startedAt = Date.now();
      while (Date.now() - startedAt < PROBE_FOR_MS) {
        const eventId = crypto.randomUUID();
        await db
          .query(
            `INSERT INTO "WebhookDelivery" (id, "eventId", "endpointId", "eventType", payload, "giveUpAt")
             VALUES (gen_random_uuid(), $1, $2, 'video.ready', $3, now() + interval '1 hour')`,
            [eventId, endpoint.rows[0]!.id, JSON.stringify({ id: eventId, queuedAt: Date.now() })],
          )
          .then(
            () => queued.add(eventId),
            () => notQueued++,
          );
        await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
      }
      // The last ones have the bound to arrive.
      const until = Date.now() + SLOW_WEBHOOK_MAX_BOUND_MS;
      while ([...queued].some((id) => !latencies.has(id)) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 200));
      return `a receiver trickling its body (1 byte / ${TRICKLE_EVERY_MS / 1000} s) registered for tenant "default"; a \
healthy receiver of tenant "chaos-healthy-webhooks" got a delivery queued every ${PROBE_EVERY_MS / 1000} s for \
${PROBE_FOR_MS / 1000} s`;
    },
    /** Stops probing and closes both receivers (the deliveries the slow one holds end at once). */
    async stop(): Promise<void> {
      stoppingAt = Date.now();
      await db.end().catch(() => undefined);
      for (const server of [slow, healthy]) {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    },
    /** The healthy endpoint's latencies; failed when a bound is exceeded or a queued delivery never arrived. */
    summary(): { line: string; failed: boolean } {
      const arrived = [...queued].map((id) => latencies.get(id)).filter((ms) => ms !== undefined);
      const missing = queued.size - arrived.length;
      const sorted = arrived.sort((a, b) => a - b);
      const p50 = sorted[Math.floor(sorted.length / 2)] ?? null;
      const max = sorted.at(-1) ?? null;
      const cut = held.filter((h) => h.closedAt !== null && h.closedAt < stoppingAt).map((h) => h.closedAt! - h.at);
      const failed =
        queued.size === 0 ||
        missing > 0 ||
        p50 === null ||
        p50 > SLOW_WEBHOOK_P50_BOUND_MS ||
        (max ?? 0) > SLOW_WEBHOOK_MAX_BOUND_MS;
      const s = (ms: number | null) => (ms === null ? "—" : `${(ms / 1000).toFixed(2)} s`);
      return {
        failed,
        line:
          `healthy endpoint p50 ${s(p50)}, max ${s(max)} over ${arrived.length}/${queued.size} deliveries` +
          `${missing ? ` (${missing} never arrived)` : ""}` +
          `${notQueued ? `, ${notQueued} not queued (database down)` : ""}` +
          ` (bounds ${s(SLOW_WEBHOOK_P50_BOUND_MS)} / ${s(SLOW_WEBHOOK_MAX_BOUND_MS)}); slow receiver held ` +
          `${held.length} deliveries, those that ended cut after at most ${s(cut.length ? Math.max(...cut) : null)}`,
      };
    },
  };
}
