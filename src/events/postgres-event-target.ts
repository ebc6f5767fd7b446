import type { TypedEvent, TypedEventTarget } from "@graphql-yoga/typed-event-target";
import pg from "pg";
import { log } from "../log.ts";

/** The NOTIFY channel every API instance listens on. */
export const EVENTS_CHANNEL = "videograph_events";

/**
 * The NOTIFY payload that delivers `detail` to the listeners of `type` on every API instance; for
 * processes that send one without an event target (the CLI) as well.
 */
export function notificationPayload(type: string, detail: unknown): string {
  return JSON.stringify({ t: type, d: detail });
}

/**
 * Delivered to the listeners of every topic after the connection was lost and re-established:
 * NOTIFYs sent meanwhile by other instances are gone, so listeners should re-read what they follow.
 */
export const RESYNC = { kind: "resync" } as const;
// Postgres refuses NOTIFY payloads of 8000 bytes or more.
const MAX_PAYLOAD_BYTES = 7900;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;
// A failover can leave the old connection silently dead (no FIN, no error); a query that does
// not answer in time is how the fan-out notices.
const PROBE_INTERVAL_MS = 10_000;
const QUERY_TIMEOUT_MS = 5000;

/**
 * An EventTarget for yoga's pubsub that fans events out to every API instance through
 * Postgres LISTEN/NOTIFY: `dispatchEvent` sends a NOTIFY; every instance (this one included)
 * delivers the notification to its local listeners. One connection both listens and notifies,
 * so events published by one instance arrive everywhere in the order it sent them.
 */
export class PostgresEventTarget<TEvent extends TypedEvent> extends EventTarget implements TypedEventTarget<TEvent> {
  readonly #connectionString: string;
  #client: pg.Client | null = null;
  #connecting: Promise<pg.Client> | null = null;
  #closed = false;
  #everConnected = false;
  #pending: Promise<unknown> = Promise.resolve();
  #probeTimer: NodeJS.Timeout | null = null;
  readonly #listenersByTopic = new Map<string, number>();

  constructor(connectionString: string) {
    super();
    this.#connectionString = connectionString;
  }

  /** Connects and starts listening; also reconnects after the connection drops. */
  async start(): Promise<void> {
    await this.#connect();
    this.#probeTimer = setInterval(() => {
      const client = this.#client;
      client?.query("SELECT 1").catch((err: Error) => this.#lost(client, err));
    }, PROBE_INTERVAL_MS);
    this.#probeTimer.unref();
  }

  #connect(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= (async () => {
      // A connect to an address that no longer answers would otherwise hang for minutes, not retry.
      const client = new pg.Client({
        connectionString: this.#connectionString,
        keepAlive: true,
        query_timeout: QUERY_TIMEOUT_MS,
        connectionTimeoutMillis: 10_000,
      });
      client.on("notification", (msg) => this.#deliver(msg.payload));
      client.on("error", (err) => this.#lost(client, err));
      client.on("end", () => this.#lost(client, new Error("connection ended")));
      try {
        await client.connect();
        await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      } catch (err) {
        await client.end().catch(() => {});
        throw err;
      }
      this.#client = client;
      if (this.#everConnected) {
        log.info("event fan-out reconnected; subscribers re-read their state");
        for (const topic of this.#listenersByTopic.keys())
          super.dispatchEvent(new CustomEvent(topic, { detail: RESYNC }));
      }
      this.#everConnected = true;
      return client;
    })().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  #lost(client: pg.Client, err: Error): void {
    if (this.#client !== client) return;
    this.#client = null;
    client.end().catch(() => {});
    if (this.#closed) return;
    log.warn("event fan-out connection lost; reconnecting", { err: err.message });
    this.#reconnectAfter(FIRST_RETRY_MS);
  }

  /** Retries with back-off until LISTEN is in place again (a restart can take many seconds). */
  #reconnectAfter(delayMs: number): void {
    setTimeout(() => {
      if (this.#closed || this.#client) return;
      this.#connect().catch((err) => {
        const next = Math.min(delayMs * 2, MAX_RETRY_MS);
        log.warn("event fan-out still down; retrying", { err: (err as Error).message, retryInMs: next });
        this.#reconnectAfter(next);
      });
    }, delayMs).unref();
  }

  #deliver(payload: string | undefined): void {
    if (!payload) return;
    let parsed: { t: string; d: unknown };
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    super.dispatchEvent(new CustomEvent(parsed.t, { detail: parsed.d }));
  }

  override dispatchEvent(event: TEvent): boolean {
    const payload = notificationPayload(event.type, event.detail);
    if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
      log.error("event too large for NOTIFY; dropped", { type: event.type, bytes: Buffer.byteLength(payload) });
      return false;
    }
    this.#pending = this.#pending
      .then(() => this.#connect())
      .then((client) => client.query("SELECT pg_notify($1, $2)", [EVENTS_CHANNEL, payload]))
      .catch((err) => log.warn("NOTIFY failed; event not fanned out", { err, type: event.type }));
    return true;
  }

  override addEventListener<TCurrEvent extends TEvent>(
    type: TCurrEvent["type"],
    callback:
      | EventListenerOrEventListenerObject
      | null
      | ((e: TCurrEvent) => void)
      | { handleEvent(e: TCurrEvent): void },
    options?: AddEventListenerOptions | boolean,
  ): void {
    super.addEventListener(type, callback as EventListenerOrEventListenerObject | null, options);
    this.#listenersByTopic.set(type, (this.#listenersByTopic.get(type) ?? 0) + 1);
  }

  override removeEventListener<TCurrEvent extends TEvent>(
    type: TCurrEvent["type"],
    callback:
      | EventListenerOrEventListenerObject
      | null
      | ((e: TCurrEvent) => void)
      | { handleEvent(e: TCurrEvent): void },
    options?: EventListenerOptions | boolean,
  ): void {
    super.removeEventListener(type, callback as EventListenerOrEventListenerObject | null, options);
    const left = (this.#listenersByTopic.get(type) ?? 1) - 1;
    if (left > 0) this.#listenersByTopic.set(type, left);
    else this.#listenersByTopic.delete(type);
  }

  /** Waits for queued NOTIFYs, then closes the connection. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    await this.#pending;
    await this.#client?.end().catch(() => {});
    this.#client = null;
  }
}
