import { createSourceEventStream, type DocumentNode, type ExecutionArgs, type ExecutionResult, execute } from "graphql";
import { contextCacheSymbol } from "@pothos/core";
import type { Plugin } from "graphql-yoga";
import type { Principal } from "../auth/scopes.ts";
import type { Context } from "../context.ts";
import { log } from "../log.ts";

/**
 * Executes a subscription's selection once per event for every subscriber who asked the same thing, and hands
 * them one result, serialised once for SSE (`serializedOnce`): thousands of front ends following one video no
 * longer each run the resolver tree. Events are shared by object identity; results are keyed by what can change
 * them (document, operation, variables, and the context resolvers read: `audienceOf`), so none crosses tenants
 * or scopes. Each subscriber's own source stream (authorization, first read, ordering) is untouched.
 */
export function sharedSubscriptionResults(): Plugin<Context> {
  const documentIds = new WeakMap<DocumentNode, number>();
  let documentCount = 0;
  // Entries go when the event object does: nothing is kept once every subscriber moved on.
  const resultsByEvent = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();

  function sharingKey(args: ExecutionArgs): string {
    let documentId = documentIds.get(args.document);
    if (documentId === undefined) {
      documentId = documentCount++;
      documentIds.set(args.document, documentId);
    }
    const context = args.contextValue as Context;
    return JSON.stringify([
      documentId,
      args.operationName ?? null,
      args.variableValues ?? null,
      audienceOf(context.auth),
      context.requestOrigin ?? null,
    ]);
  }

  function resultFor(event: unknown, key: string, args: ExecutionArgs): Promise<ExecutionResult> | ExecutionResult {
    const run = () => execute({ ...args, rootValue: event });
    if (typeof event !== "object" || event === null) return run();
    let byKey = resultsByEvent.get(event);
    if (!byKey) {
      byKey = new Map();
      resultsByEvent.set(event, byKey);
    }
    let result = byKey.get(key);
    if (!result) {
      result = Promise.resolve(run()).then(serializedOnce);
      byKey.set(key, result);
    }
    return result;
  }

  // Subscribers who share results and are written to directly (`SubscriptionChannel`), by sharing key.
  const audiences = new Map<string, Audience>();

  return {
    onSubscribe: ({ setSubscribeFn }) => {
      setSubscribeFn(async (args) => {
        const channel = (args.contextValue as { subscriptionChannel?: SubscriptionChannel }).subscriptionChannel;
        // Pothos keeps its per-request caches (scope-auth's, for one) under this key while it is
        // on the context: see releaseRequestCaches.
        if (channel) (args.contextValue as Record<symbol, unknown>)[contextCacheSymbol] = {};
        const stream = await createSourceEventStream(args as ExecutionArgs);
        if (!(Symbol.asyncIterator in stream)) return stream;
        const key = sharingKey(args as ExecutionArgs);
        if (channel && isAttachable(stream)) {
          let audience = audiences.get(key);
          if (audience) {
            releaseRequestCaches(args.contextValue as object);
          } else {
            const created: Audience = new Audience(
              (event) => resultFor(event, key, args as ExecutionArgs),
              () => {
                if (audiences.get(key) === created) audiences.delete(key);
              },
            );
            audience = created;
            audiences.set(key, audience);
          }
          return audience.join(stream, channel);
        }
        return mapEvents(stream, (event) => resultFor(event, key, args as ExecutionArgs));
      });
    },
  };
}

/**
 * Where a source stream that can push (`attach`) hands its events, in order, then its end: a
 * follower of a video (src/events/follow-video.ts) calls it synchronously, once per event.
 */
export interface SubscriptionSink<T> {
  next(value: T): void;
  end(): void;
}

/** A subscription's source stream that can hand its events to a sink instead of being pulled. */
interface AttachableStream<T> extends AsyncIterator<T> {
  attach(sink: SubscriptionSink<T>): void;
}

function isAttachable(stream: object): stream is AttachableStream<unknown> {
  return typeof (stream as { attach?: unknown }).attach === "function";
}

/**
 * Writes a subscription's results straight to its client (graphql-ws.ts puts one in each
 * WebSocket operation's context): `next` sends the result as the subscription's `next` message,
 * its JSON made once per result object.
 */
export interface SubscriptionChannel {
  next(result: ExecutionResult): void;
}

/** The end of a member's events, queued behind its results. */
const END = Symbol("end");

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/** One event for the members of an audience it was offered to, as the source offered it. */
interface Batch {
  event: unknown;
  members: AudienceMember[];
}

/**
 * The WebSocket subscribers of one sharing key whose source streams push (`attach`): each event is executed
 * once and written to each of them from here, with no async iteration per subscriber. Results with errors, and
 * all behind one, go through graphql-ws (yoga's masking sees them) so order is kept. Events run one at a time.
 */
export class Audience {
  private members = 0;
  private tail: Promise<void> = Promise.resolve();
  private open: Batch | null = null;
  readonly execute: (event: unknown) => Promise<ExecutionResult> | ExecutionResult;
  private readonly onEmpty: () => void;

  constructor(execute: (event: unknown) => Promise<ExecutionResult> | ExecutionResult, onEmpty: () => void) {
    this.execute = execute;
    this.onEmpty = onEmpty;
  }

  /**
   * The results of `stream` for graphql-ws: its first event as any subscription's, then (once
   * graphql-ws asks for the second) every event written to `channel` from here.
   */
  join(stream: AttachableStream<unknown>, channel: SubscriptionChannel): AsyncGenerator<ExecutionResult> {
    this.members++;
    return new AudienceMember(this, stream, channel);
  }

  leave(): void {
    if (--this.members === 0) this.onEmpty();
  }

  /** Queues `event` (or the end) for `member` behind what is queued before it. */
  enqueue(event: unknown, member: AudienceMember): void {
    const open = this.open;
    if (open && open.event === event) {
      open.members.push(member);
      return;
    }
    const batch: Batch = { event, members: [member] };
    this.open = batch;
    // Executed one after another, in order, not side by side: a field resolved from the database
    // when its event is executed (a video's chunks done, its jobs) then never shows an older state
    // after a newer one.
    this.tail = this.tail
      .then(() => (event === END ? null : this.execute(event)))
      .then(
        (value) => this.deliver(batch, value),
        (err: unknown) => {
          log.error("a shared subscription result failed; its subscribers are ended", { err });
          this.deliver(batch, null);
        },
      );
  }

  /** `result` to each member of `batch`, or (null) their end. */
  private deliver(batch: Batch, result: ExecutionResult | null): void {
    if (this.open === batch) this.open = null;
    const item = result ?? END;
    const direct = item !== END && !item.errors?.length;
    for (const member of batch.members) {
      if (direct && member.parked && member.queue.length === 0) member.channel.next(item as ExecutionResult);
      else member.hand(item);
    }
  }
}

/**
 * One subscriber of an audience, as graphql-ws iterates it: its first result, then a `next()` that
 * waits (`parked`) while results are written to its channel directly, until the end.
 */
class AudienceMember implements AsyncGenerator<ExecutionResult> {
  readonly channel: SubscriptionChannel;
  /** graphql-ws' pending `next()`, while it waits: then a result may be written directly. */
  parked: ((result: IteratorResult<ExecutionResult>) => void) | null = null;
  /** Results graphql-ws emits itself, in order (those with errors, and any behind one). */
  queue: (ExecutionResult | typeof END)[] = [];
  readonly audience: Audience;
  private readonly stream: AttachableStream<unknown>;
  private state: "new" | "first" | "attached" | "left" = "new";

  constructor(audience: Audience, stream: AttachableStream<unknown>, channel: SubscriptionChannel) {
    this.audience = audience;
    this.stream = stream;
    this.channel = channel;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.state === "new") {
      this.state = "first";
      const head = await this.stream.next();
      if (head.done) {
        this.leave();
        return DONE;
      }
      return { value: await this.audience.execute(head.value), done: false };
    }
    if (this.state === "first") {
      this.state = "attached";
      this.stream.attach(new MemberSink(this));
    }
    const queued = this.queue.shift();
    if (queued === END || this.state === "left") {
      this.leave();
      return DONE;
    }
    if (queued !== undefined) return { value: queued, done: false };
    return new Promise((resolve) => {
      this.parked = resolve;
    });
  }

  /** A result (or the end) for graphql-ws to emit: to its waiting `next()`, or queued for the next one. */
  hand(item: ExecutionResult | typeof END): void {
    if (this.state === "left") return;
    const parked = this.parked;
    if (!parked || this.queue.length > 0) {
      this.queue.push(item);
      return;
    }
    this.parked = null;
    if (item === END) {
      this.leave();
      parked(DONE);
    } else {
      parked({ value: item, done: false });
    }
  }

  /** The client completed the subscription or closed its socket. */
  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.queue = [];
    const parked = this.parked;
    this.parked = null;
    this.leave();
    parked?.(DONE);
    await this.stream.return?.();
    return DONE;
  }

  async throw(err: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw err;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }

  private leave(): void {
    if (this.state === "left") return;
    this.state = "left";
    this.audience.leave();
  }
}

/** What a member's source stream hands its events to: its audience, in order. */
class MemberSink implements SubscriptionSink<unknown> {
  private readonly member: AudienceMember;
  constructor(member: AudienceMember) {
    this.member = member;
  }
  next(event: unknown): void {
    this.member.audience.enqueue(event, this.member);
  }
  end(): void {
    this.member.audience.enqueue(END, this.member);
  }
}

/**
 * Gives a shared result the `stringify` yoga's SSE responses use when a result has one: the first
 * subscriber's call makes the JSON, the others get the same string. Yoga hands it the result as
 * it sends it (internal error extensions removed), which is the same for every subscriber of one
 * result. Not enumerable, so nothing that copies or serialises the result sees it.
 */
function serializedOnce(result: ExecutionResult): ExecutionResult {
  let json: string | undefined;
  Object.defineProperty(result, "stringify", {
    value: (sent: unknown) => {
      json ??= JSON.stringify(sent);
      return json;
    },
    enumerable: false,
  });
  return result;
}

/**
 * What of the principal a resolver may read: its tenant and scopes. A field that starts reading
 * more of the principal (its subject, say) must add it here, or its results would be shared.
 */
function audienceOf(principal: Principal | null): [string, string[]] | null {
  return principal && [principal.tenantId, [...principal.scopes].sort()];
}

/**
 * Lets Pothos' per-request caches of a subscriber's context go: a member who joins an audience is
 * never executed against again (its results are the audience's, executed with the first member's
 * arguments), while graphql-ws keeps its context until the subscription ends. About 1 KiB of heap
 * per subscriber (docs/performance.md, "A smaller young generation").
 */
function releaseRequestCaches(context: object): void {
  delete (context as Record<symbol, unknown>)[contextCacheSymbol];
}

/** Like graphql-js' own mapping: `return()` reaches the source at once, even while it waits for an event. */
function mapEvents<T, R>(
  source: AsyncIterable<T>,
  map: (value: T) => Promise<R> | R,
): AsyncIterableIterator<R> & AsyncGenerator<R> {
  const iterator = source[Symbol.asyncIterator]();
  const close = async (): Promise<IteratorResult<R>> => {
    await iterator.return?.();
    return { done: true, value: undefined };
  };
  const mapped: AsyncGenerator<R> = {
    async next() {
      const next = await iterator.next();
      if (next.done) return { done: true, value: undefined };
      try {
        return { done: false, value: await map(next.value) };
      } catch (err) {
        await close().catch(() => {});
        throw err;
      }
    },
    return: close,
    async throw(err: unknown) {
      await close();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return mapped;
    },
    async [Symbol.asyncDispose]() {
      await close();
    },
  };
  return mapped;
}
