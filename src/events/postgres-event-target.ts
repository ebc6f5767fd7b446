import type { TypedEvent, TypedEventTarget } from "@graphql-yoga/typed-event-target";
import { randomUUID } from "node:crypto";
import { log } from "../log.ts";
import { listenWithReconnect, type PostgresListener } from "../shared/postgres-listener.ts";

/** The NOTIFY channel every API instance listens on. */
export const EVENTS_CHANNEL = "videograph_events";

/**
 * The NOTIFY payload that delivers `detail` to the listeners of `type` on every API instance; for
 * processes that send one without an event target (the CLI) as well.
 */
export function notificationPayload(type: string, detail: unknown, messageId?: string): string {
  // The id keeps two equal events apart: Postgres delivers equal payloads of one transaction once.
  return JSON.stringify(messageId === undefined ? { t: type, d: detail } : { t: type, d: detail, i: messageId });
}

/**
 * Delivered to the listeners of every topic after the connection was lost and re-established:
 * NOTIFYs sent meanwhile by other instances are gone, so listeners should re-read what they follow.
 */
export const RESYNC = { kind: "resync" } as const;

// Postgres refuses NOTIFY payloads of 8000 bytes or more.
const MAX_PAYLOAD_BYTES = 7900;
const PART_PREFIX = "part:";
const CLOSE_PATIENCE_MS = 5000;
/** NOTIFYs one statement may send; a burst beyond goes in several. */
const MAX_NOTIFYS_PER_STATEMENT = 500;

/**
 * The NOTIFYs that carry `payload` (a `notificationPayload`): itself when it fits in one, else
 * parts of at most MAX_PAYLOAD_BYTES, each `part:<message>:<index>:<count>:` and a slice of its
 * UTF-8 bytes cut between characters. A receiver joins the parts of a message and parses the whole.
 */
export function notificationParts(payload: string, messageId: string): string[] {
  const bytes = Buffer.from(payload);
  if (bytes.length <= MAX_PAYLOAD_BYTES) return [payload];
  const sliceBytes = MAX_PAYLOAD_BYTES - 64;
  const slices: string[] = [];
  for (let start = 0; start < bytes.length; ) {
    let end = Math.min(start + sliceBytes, bytes.length);
    // Never between the bytes of one character: each part must be text on its own.
    while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
    slices.push(bytes.toString("utf8", start, end));
    start = end;
  }
  return slices.map((slice, i) => `${PART_PREFIX}${messageId}:${i}:${slices.length}:${slice}`);
}

/**
 * An EventTarget for yoga's pubsub that fans events out to every API instance through Postgres LISTEN/NOTIFY,
 * on one connection so each instance's events arrive everywhere in its order. An event too large for a NOTIFY
 * goes as several in one statement; events dispatched while a statement is in flight go together in the next
 * (up to MAX_NOTIFYS_PER_STATEMENT), so a burst costs a round trip or two. Each instance parses an event once.
 */
export class PostgresEventTarget<TEvent extends TypedEvent> extends EventTarget implements TypedEventTarget<TEvent> {
  readonly #connectionString: string;
  readonly #senderId = randomUUID();
  #sentCount = 0;
  #listener: Promise<PostgresListener> | null = null;
  #closed = false;
  #pending: Promise<unknown> = Promise.resolve();
  /** NOTIFY payloads of the statement that goes after the one in flight; null once it is sent. */
  #unsent: string[] | null = null;
  /** Parts received of messages not yet whole, by message; a lost connection loses the rest of them. */
  readonly #partsByMessage = new Map<string, string[]>();
  readonly #listenersByTopic = new Map<string, number>();

  constructor(connectionString: string) {
    super();
    this.#connectionString = connectionString;
  }

  /** Connects and starts listening; also reconnects after the connection drops. */
  async start(): Promise<void> {
    await this.#listening();
  }

  #listening(): Promise<PostgresListener> {
    if (this.#listener) return this.#listener;
    const listening = listenWithReconnect({
      connectionString: this.#connectionString,
      channel: EVENTS_CHANNEL,
      name: "event fan-out",
      log,
      onNotification: (payload) => this.#receive(payload),
      onReconnected: () => {
        this.#partsByMessage.clear();
        for (const topic of this.#listenersByTopic.keys())
          super.dispatchEvent(new CustomEvent(topic, { detail: RESYNC }));
      },
    });
    // A first connect that failed is tried again by the next send.
    listening.catch(() => {
      if (this.#listener === listening) this.#listener = null;
    });
    this.#listener = listening;
    return listening;
  }

  #receive(payload: string): void {
    if (!payload.startsWith(PART_PREFIX)) {
      this.#deliver(payload);
      return;
    }
    const header = /^part:([^:]+):(\d+):(\d+):/.exec(payload);
    if (!header) return;
    const [, messageId, index, count] = header as unknown as [string, string, string, string];
    const parts = this.#partsByMessage.get(messageId) ?? [];
    if (Number(index) !== parts.length) {
      this.#partsByMessage.delete(messageId);
      return;
    }
    parts.push(payload.slice(header[0].length));
    if (parts.length < Number(count)) {
      this.#partsByMessage.set(messageId, parts);
      return;
    }
    this.#partsByMessage.delete(messageId);
    this.#deliver(parts.join(""));
  }

  #deliver(payload: string): void {
    let parsed: { t: string; d: unknown };
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    super.dispatchEvent(new CustomEvent(parsed.t, { detail: parsed.d }));
  }

  override dispatchEvent(event: TEvent): boolean {
    if (this.#closed) return false;
    const messageId = `${this.#senderId}.${this.#sentCount++}`;
    const parts = notificationParts(notificationPayload(event.type, event.detail, messageId), messageId);
    if (this.#unsent && this.#unsent.length + parts.length <= MAX_NOTIFYS_PER_STATEMENT) {
      this.#unsent.push(...parts);
      return true;
    }
    const batch = [...parts];
    this.#unsent = batch;
    const send = async () => {
      // From here on, later events wait for the next statement.
      if (this.#unsent === batch) this.#unsent = null;
      const listener = await this.#listening();
      const client = await listener.connection();
      try {
        if (batch.length === 1) await client.query("SELECT pg_notify($1, $2)", [EVENTS_CHANNEL, batch[0]]);
        else
          await client.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n", [
            EVENTS_CHANNEL,
            batch,
          ]);
      } catch (err) {
        listener.queryFailed(client, err);
        throw err;
      }
    };
    this.#pending = this.#pending
      .then(send)
      // A NOTIFY cut off with its connection may not have gone out: sent again on the next one (a
      // subscriber takes an event twice in its stride, but never learns of one that was lost).
      .catch(send)
      .catch((err) => log.warn("NOTIFY failed; events not fanned out", { err, events: batch.length }));
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

  /**
   * Waits for queued NOTIFYs, then closes the connection; with the database down, it waits no
   * longer than a query may take, and the NOTIFYs still queued are not sent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.race([this.#pending, new Promise((resolve) => setTimeout(resolve, CLOSE_PATIENCE_MS).unref())]);
    const listener = await this.#listener?.catch(() => null);
    await listener?.close();
    await this.#pending;
  }
}
