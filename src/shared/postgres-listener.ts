import pg from "pg";
import type { Log } from "./log.ts";

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;
// A failover can leave the old connection silently dead (no FIN, no error); a query that does
// not answer in time is how the listener notices.
export const PROBE_INTERVAL_MS = 10_000;
const QUERY_TIMEOUT_MS = 5000;
// A connect to an address that no longer answers would otherwise hang for minutes, not retry.
const CONNECT_TIMEOUT_MS = 10_000;

export interface PostgresListenerOptions {
  connectionString: string;
  channel: string;
  /** What the log lines call the connection: "event fan-out", "control channel". */
  name: string;
  log: Pick<Log, "info" | "warn">;
  onNotification: (payload: string) => void;
  /** Called after the connection was lost and LISTEN is in place again: NOTIFYs sent meanwhile are gone. */
  onReconnected: () => void;
}

export interface PostgresListener {
  /**
   * The listening connection, once LISTEN is in place (after a reconnect when it is down); rejects
   * once closed. For NOTIFYs that must arrive in the order this process sends them.
   */
  connection(): Promise<pg.Client>;
  /**
   * A query on `client` failed with `err`: unless Postgres refused only the statement, the
   * connection is taken as lost (a query can learn of that before the listener does).
   */
  queryFailed(client: pg.Client, err: unknown): void;
  close(): Promise<void>;
}

/**
 * A connection for LISTEN, as every listener opens it: kept alive, and a query or a connect that
 * does not answer in time fails (a probe every PROBE_INTERVAL_MS finds a connection gone silent).
 */
export function listeningClient(connectionString: string, applicationName?: string): pg.Client {
  return new pg.Client({
    connectionString,
    keepAlive: true,
    query_timeout: QUERY_TIMEOUT_MS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(applicationName ? { application_name: applicationName } : {}),
  });
}

/**
 * LISTENs on `channel` over a connection of its own and keeps listening through restarts and
 * failovers: a lost connection is replaced with back-off (250 ms doubling to 5 s) until one
 * LISTENs again, and a probe every 10 s notices a connection that went silent. Resolves once the
 * first LISTEN is in place; rejects if that one fails. Both programs' LISTENs (the API's event
 * fan-out, a worker's control channel) are this one.
 */
export async function listenWithReconnect(options: PostgresListenerOptions): Promise<PostgresListener> {
  const { log, name, channel } = options;
  let client: pg.Client | null = null;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let probeTimer: NodeJS.Timeout | null = null;
  let waiters: { resolve: (c: pg.Client) => void; reject: (err: Error) => void }[] = [];

  async function connect(): Promise<void> {
    const next = listeningClient(options.connectionString);
    next.on("notification", (msg) => {
      if (msg.payload !== undefined) options.onNotification(msg.payload);
    });
    next.on("error", (err) => lost(next, err));
    next.on("end", () => lost(next, new Error("connection ended")));
    try {
      await next.connect();
      await next.query(`LISTEN ${channel}`);
    } catch (err) {
      await next.end().catch(() => {});
      throw err;
    }
    if (closed) return void (await next.end().catch(() => {}));
    client = next;
  }

  function connected(current: pg.Client): void {
    const waiting = waiters;
    waiters = [];
    for (const w of waiting) w.resolve(current);
  }

  function lost(which: pg.Client, err: Error): void {
    if (client !== which) return;
    client = null;
    which.end().catch(() => {});
    if (closed) return;
    log.warn(`${name} connection lost; reconnecting`, { channel, err: err.message });
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
        log.warn(`${name} still down; retrying`, { channel, err: (err as Error).message, retryInMs: nextDelay });
        return retryAfter(nextDelay);
      }
      if (closed || !client) return;
      log.info(`${name} reconnected`, { channel });
      options.onReconnected();
      connected(client);
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
    connection() {
      if (client) return Promise.resolve(client);
      if (closed) return Promise.reject(new Error(`${name} closed`));
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    queryFailed(which, err) {
      if ((err as { severity?: unknown })?.severity === "ERROR") return;
      lost(which, err instanceof Error ? err : new Error(String(err)));
    },
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      if (probeTimer) clearInterval(probeTimer);
      const waiting = waiters;
      waiters = [];
      for (const w of waiting) w.reject(new Error(`${name} closed`));
      const current = client;
      client = null;
      await current?.end().catch(() => {});
    },
  };
}
