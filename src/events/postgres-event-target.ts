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
  readonly #listenersByTopic = new Map<string, number>();

  constructor(connectionString: string) {
    super();
    this.#connectionString = connectionString;
  }

  /** Connects and starts listening; also reconnects after the connection drops. */
  async start(): Promise<void> {
    await this.#connect();
  }

  #connect(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.#connectionString });
      client.on("notification", (msg) => this.#deliver(msg.payload));
      client.on("error", (err) => {
        log.warn("event fan-out connection lost; reconnecting", { err });
        this.#client = null;
        client.end().catch(() => {});
        if (!this.#closed) setTimeout(() => this.#connect().catch(() => {}), 1000).unref();
      });
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      this.#client = client;
      if (this.#everConnected) {
        log.info("event fan-out reconnected; subscribers re-read their state");
        for (const topic of this.#listenersByTopic.keys()) super.dispatchEvent(new CustomEvent(topic, { detail: RESYNC }));
      }
      this.#everConnected = true;
      return client;
    })().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
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
    callback: EventListenerOrEventListenerObject | null | ((e: TCurrEvent) => void) | { handleEvent(e: TCurrEvent): void },
    options?: AddEventListenerOptions | boolean,
  ): void {
    super.addEventListener(type, callback as EventListenerOrEventListenerObject | null, options);
    this.#listenersByTopic.set(type, (this.#listenersByTopic.get(type) ?? 0) + 1);
  }

  override removeEventListener<TCurrEvent extends TEvent>(
    type: TCurrEvent["type"],
    callback: EventListenerOrEventListenerObject | null | ((e: TCurrEvent) => void) | { handleEvent(e: TCurrEvent): void },
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
    await this.#pending;
    await this.#client?.end().catch(() => {});
    this.#client = null;
  }
}
