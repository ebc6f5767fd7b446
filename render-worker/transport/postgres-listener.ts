import pg from "pg";
import { log } from "../log.ts";

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;
// A failover can leave the old connection silently dead (no FIN, no error); a query that does
// not answer in time is how the listener notices.
const PROBE_INTERVAL_MS = 10_000;
const PROBE_TIMEOUT_MS = 5000;

export interface PostgresListenerOptions {
  connectionString: string;
  channel: string;
  onNotification: (payload: string) => void;
  /** Called after the connection was lost and LISTEN is in place again: NOTIFYs sent meanwhile are gone. */
  onReconnected: () => void;
}

export interface PostgresListener {
  close(): Promise<void>;
}

/**
 * LISTENs on `channel` over a connection of its own and keeps listening through restarts and
 * failovers: a lost connection is replaced with back-off (250 ms doubling to 5 s) until one
 * LISTENs again. Resolves once the first LISTEN is in place; rejects if that one fails.
 */
export async function listenWithReconnect(options: PostgresListenerOptions): Promise<PostgresListener> {
  let client: pg.Client | null = null;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let probeTimer: NodeJS.Timeout | null = null;

  async function connect(): Promise<void> {
    // A connect to an address that no longer answers would otherwise hang for minutes, not retry.
    const next = new pg.Client({
      connectionString: options.connectionString,
      keepAlive: true,
      query_timeout: PROBE_TIMEOUT_MS,
      connectionTimeoutMillis: 10_000,
    });
    next.on("notification", (msg) => {
      if (msg.payload !== undefined) options.onNotification(msg.payload);
    });
    next.on("error", (err) => lost(next, err));
    next.on("end", () => lost(next, new Error("connection ended")));
    try {
      await next.connect();
      await next.query(`LISTEN ${options.channel}`);
    } catch (err) {
      await next.end().catch(() => {});
      throw err;
    }
    if (closed) return void (await next.end().catch(() => {}));
    client = next;
  }

  function lost(which: pg.Client, err: Error): void {
    if (client !== which) return;
    client = null;
    which.end().catch(() => {});
    if (closed) return;
    log.warn("control channel lost; reconnecting", { channel: options.channel, err: err.message });
    retryAfter(FIRST_RETRY_MS);
  }

  function retryAfter(delayMs: number): void {
    retryTimer = setTimeout(async () => {
      retryTimer = null;
      try {
        await connect();
      } catch (err) {
        if (closed) return;
        const nextDelay = Math.min(delayMs * 2, MAX_RETRY_MS);
        log.warn("control channel still down; retrying", {
          channel: options.channel,
          err: (err as Error).message,
          retryInMs: nextDelay,
        });
        return retryAfter(nextDelay);
      }
      if (closed) return;
      log.info("control channel reconnected", { channel: options.channel });
      options.onReconnected();
    }, delayMs);
    retryTimer.unref();
  }

  await connect();
  probeTimer = setInterval(() => {
    const current = client;
    current?.query("SELECT 1").catch((err: Error) => lost(current, err));
  }, PROBE_INTERVAL_MS);
  probeTimer.unref();

  return {
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      if (probeTimer) clearInterval(probeTimer);
      const current = client;
      client = null;
      await current?.end().catch(() => {});
    },
  };
}
