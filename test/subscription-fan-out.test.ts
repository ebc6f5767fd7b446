import { once } from "node:events";
import v8 from "node:v8";
import vm from "node:vm";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { RequestCache } from "@pothos/plugin-scope-auth";
import type { Client } from "graphql-ws";
import { SignJWT } from "jose";
import pg from "pg";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, DEFAULT_TENANT_ID, revokeApiKey } from "../src/auth/api-keys.ts";
import { EVENTS_CHANNEL, notificationPayload } from "../src/events/postgres-event-target.ts";
import { MAX_QUEUED_VIDEO_EVENTS, type VideoEventPayload, videoSnapshot } from "../src/events/video-events.ts";
import type { Context } from "../src/context.ts";
import { followVideoEvents } from "../src/events/follow-video.ts";
import { SLOW_CONSUMER_CLOSE_CODE, TRY_AGAIN_LATER_CLOSE_CODE } from "../src/http/graphql-ws.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH } from "./support/auth.ts";
import {
  type Checked,
  type DataOf,
  expectTypename,
  graphql,
  type Operation,
  operationText,
} from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const bearer = (secret: string) => `Bearer ${secret}`;

v8.setFlagsFromString("--expose-gc");
/** A full collection, so that a WeakRef to what nothing else holds is cleared. */
const collectGarbage = vm.runInNewContext("gc") as () => void;

const EVENT_TYPES = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename } }`);
const EVENT_STATUS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { id status } } }`);
const EVENT_TITLES = graphql(
  `subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { title status } } }`,
);
const EVENT_DESCRIPTIONS = graphql(
  `subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { description } } }`,
);
const EVENT_INDEXES = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) {
      __typename video { status } ... on RenderProgressEvent { index } } }`);

type Result<T> = { data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] };

/** Subscribes; `results` fills with every `next`; `first` resolves at the first one (the current state). */
function follow<D extends Operation>(client: Client, operation: D & Checked<D>, videoId: string) {
  type Event = Result<DataOf<D>>;
  const results: Event[] = [];
  let ended!: (how: unknown) => void;
  const end = new Promise((resolve) => (ended = resolve));
  const first = new Promise<Event>((resolve, reject) => {
    client.subscribe(
      { query: operationText<D>(operation), variables: { id: videoId } },
      {
        next: (result) => {
          results.push(result as Event);
          resolve(result as Event);
        },
        error: (err) => {
          reject(err);
          ended(err);
        },
        complete: () => ended("complete"),
      },
    );
  });
  return { results, first, end };
}

async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(20);
  }
}

async function createVideo(t: TestApp, title: string): Promise<string> {
  return (await createUpload(t, title)).id;
}

async function snapshotOf(t: TestApp, videoId: string) {
  return videoSnapshot(await t.app.services.db.video.findUniqueOrThrow({ where: { id: videoId } }));
}

/** One API with the default settings for every group below that needs no other. */
let sharedApp: Promise<TestApp> | undefined;
const defaultApp = () => {
  sharedApp ??= startTestApp({ worker: false });
  return sharedApp;
};
afterAll(async () => (await sharedApp)?.stop());

describe("subscribers of one video that ask the same thing share one execution per event", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await defaultApp();
  });

  // `runs` needs jobs:admin: a result executed for the admin key must never reach the read-only key, nor the reverse.
  const JOB_RUNS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) {
    __typename video { id jobs(first: 5) { edges { node { kind runs { id } } } } } } }`);

  it("a read-only key is refused a jobs:admin field on every event while admin keys on the same video get it", async () => {
    const videoId = await createVideo(t, "shared by scope");
    await t.app.services.db.job.create({ data: { videoId, kind: "TRANSCODE" } });
    const readOnly = await createApiKey(t.app.services.db, {
      tenantId: DEFAULT_TENANT_ID,
      name: "viewer",
      scopes: ["videos:read"],
    });
    // Either order of first execution must give each its own answer.
    const subscribers = [
      follow(t.wsClient(), JOB_RUNS, videoId),
      follow(t.wsClient(bearer(readOnly.secret)), JOB_RUNS, videoId),
      follow(t.wsClient(), JOB_RUNS, videoId),
      follow(t.wsClient(bearer(readOnly.secret)), JOB_RUNS, videoId),
    ];
    await Promise.all(subscribers.map((s) => s.first));
    const video = await snapshotOf(t, videoId);
    const events = 3;
    for (let i = 0; i < events; i++) t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video });
    await until(() => subscribers.every((s) => s.results.length === 1 + events), 10_000);
    for (const [i, s] of subscribers.entries()) {
      for (const result of s.results) {
        if (i % 2 === 0) {
          expect(result.errors).toBeUndefined();
          expect(result.data!.videoEvents.video.jobs.edges).toEqual([{ node: { kind: "TRANSCODE", runs: [] } }]);
        } else {
          expect(result.errors?.[0]?.message).toMatch(/Job.runs needs a scope/);
          expect(JSON.stringify(result.data ?? null)).not.toContain("runs");
        }
      }
    }
  });

  it("the same event executed for two subscribers with the same key and document is one result object", async () => {
    const videoId = await createVideo(t, "shared result");
    const open = async () => {
      const { schema, subscribe, contextFactory, parse } = t.app.yoga.getEnveloped({
        connectionParams: { authorization: `Bearer vg_test_admin_key_not_a_secret_0123456789` },
      });
      const stream = (await subscribe({
        schema,
        document: parse(operationText(EVENT_STATUS)),
        variableValues: { id: videoId },
        contextValue: await contextFactory(),
      })) as AsyncIterableIterator<unknown>;
      await stream.next(); // the current state, read for each subscriber
      return stream;
    };
    const [a, b] = [await open(), await open()];
    const readOnly = await createApiKey(t.app.services.db, {
      tenantId: DEFAULT_TENANT_ID,
      name: "other scopes",
      scopes: ["videos:read"],
    });
    const { schema, subscribe, contextFactory, parse } = t.app.yoga.getEnveloped({
      connectionParams: { authorization: bearer(readOnly.secret) },
    });
    const c = (await subscribe({
      schema,
      document: parse(operationText(EVENT_STATUS)),
      variableValues: { id: videoId },
      contextValue: await contextFactory(),
    })) as AsyncIterableIterator<unknown>;
    await c.next();
    const nextOf = [a.next(), b.next(), c.next()];
    t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video: await snapshotOf(t, videoId) });
    const [ra, rb, rc] = await Promise.all(nextOf);
    expect(ra!.value).toMatchObject({ data: { videoEvents: { __typename: "VideoStatusEvent" } } });
    expect(rb!.value).toBe(ra!.value);
    expect(rc!.value).toEqual(ra!.value);
    expect(rc!.value).not.toBe(ra!.value);
    // Serialised once for SSE: yoga calls a result's own stringify; the first call's JSON is every call's.
    const stringify = (ra!.value as { stringify?: (sent: unknown) => string }).stringify!;
    expect(stringify(ra!.value)).toBe(JSON.stringify(ra!.value));
    expect(stringify({ other: "subscriber's copy" })).toBe(JSON.stringify(ra!.value));
    expect(Object.keys(ra!.value as object)).not.toContain("stringify");
    await Promise.all([a.return?.(), b.return?.(), c.return?.()]);
  });
});

describe("a subscriber who joins others' results keeps nothing it no longer needs", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await defaultApp();
  });

  it("its Pothos request cache is let go while it stays subscribed; the first subscriber's, used for every event, is kept", async () => {
    const videoId = await createVideo(t, "request caches");
    // Observes each context's scope-auth cache as Pothos makes it (it calls the class' static).
    const caches = new Map<object, WeakRef<object>>();
    const fromContext = RequestCache.fromContext;
    RequestCache.fromContext = ((context: object, builder: never) => {
      const cache = fromContext.call(RequestCache, context, builder);
      if (!caches.has(context)) caches.set(context, new WeakRef(cache));
      return cache;
    }) as typeof fromContext;
    /** A WebSocket subscriber as graphql-ws.ts opens one: results after the first come through its channel. */
    const open = async () => {
      const results: unknown[] = [];
      const { schema, subscribe, contextFactory, parse } = t.app.yoga.getEnveloped({
        connectionParams: ADMIN_AUTH,
        subscriptionChannel: { next: (result: unknown) => results.push(result) },
      });
      const contextValue = await contextFactory();
      const stream = (await subscribe({
        schema,
        document: parse(operationText(EVENT_STATUS)),
        variableValues: { id: videoId },
        contextValue,
      })) as AsyncGenerator<unknown>;
      results.push((await stream.next()).value);
      const ended = stream.next(); // graphql-ws' pending next(): waits until the end
      return { contextValue, results, stream, ended };
    };
    try {
      const first = await open();
      const joined = await open();
      expect(caches.get(joined.contextValue)).toBeDefined();
      // A WeakRef holds its target until the current job ends: each try collects in a job of its own, before
      // it reads. Tries, not one: once in a full run (in a process that had run other files) one collection
      // 10 ms after the join was not enough. Were it kept by the subscription, every try would fail.
      await expect
        .poll(
          () => {
            collectGarbage();
            // A boolean: the poll keeps what the last try returned.
            return caches.get(joined.contextValue)?.deref() === undefined;
          },
          { timeout: 3000, interval: 20 },
        )
        .toBe(true);
      expect(caches.get(first.contextValue)?.deref()).toBeDefined();
      t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video: await snapshotOf(t, videoId) });
      await until(() => first.results.length === 2 && joined.results.length === 2, 5000);
      expect(joined.results[1]).toMatchObject({ data: { videoEvents: { __typename: "VideoStatusEvent" } } });
      expect(joined.results[1]).toBe(first.results[1]);
      await Promise.all([first.stream.return(undefined), joined.stream.return(undefined)]);
      expect(await joined.ended).toEqual({ done: true, value: undefined });
    } finally {
      RequestCache.fromContext = fromContext;
    }
  });
});

describe("subscribers who share a result share its bytes", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await defaultApp();
  });

  /** A graphql-transport-ws conversation on a plain socket: every frame the server sent, as text. */
  async function rawSubscriber<D extends Operation>(
    authorization: string,
    id: string,
    operation: D & Checked<D>,
    videoId: string,
  ) {
    const socket = new WebSocket(`${t.url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
    const frames: string[] = [];
    socket.on("message", (data) => frames.push(String(data)));
    await once(socket, "open");
    socket.send(JSON.stringify({ type: "connection_init", payload: { authorization } }));
    await until(() => frames.length === 1, 5000);
    const query = operationText<D>(operation);
    socket.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables: { id: videoId } } }));
    await until(() => frames.length === 2, 5000);
    return { frames, close: () => socket.close(), send: (message: object) => socket.send(JSON.stringify(message)) };
  }

  const renderProgress = (video: Awaited<ReturnType<typeof snapshotOf>>, index: number) =>
    ({
      kind: "renderProgress",
      video,
      index,
      count: 10,
      percent: 0,
      description: null,
      renderedCount: index,
      cachedCount: 0,
    }) as const;

  it("each socket gets the same bytes with only its subscription id its own; other scopes get their own", async () => {
    // Text that looks like the placeholder the result's JSON replaces, inside the result itself.
    const title = 'x"payload":{"\\u0000r":0}} {"\\u0000r":1}}';
    const videoId = await createVideo(t, title);
    const readOnly = await createApiKey(t.app.services.db, {
      tenantId: DEFAULT_TENANT_ID,
      name: "reader",
      scopes: ["videos:read"],
    });
    const admin = ADMIN_AUTH.authorization;
    const [a, b, c] = [
      await rawSubscriber(admin, "a", EVENT_TITLES, videoId),
      await rawSubscriber(admin, "a-much-longer-id", EVENT_TITLES, videoId),
      await rawSubscriber(bearer(readOnly.secret), "c", EVENT_TITLES, videoId),
    ];
    t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video: await snapshotOf(t, videoId) });
    await until(() => [a, b, c].every((s) => s.frames.length === 3), 5000);
    const [fa, fb, fc] = [a, b, c].map((s) => s.frames[2]!);
    expect(JSON.parse(fa!)).toEqual({
      id: "a",
      type: "next",
      payload: {
        data: { videoEvents: { __typename: "VideoStatusEvent", video: { title, status: "WAITING_FOR_UPLOAD" } } },
      },
    });
    expect(fb).toBe(fa!.replace('"id":"a"', '"id":"a-much-longer-id"'));
    expect(JSON.parse(fc!)).toEqual({ ...JSON.parse(fa!), id: "c" });
    for (const s of [a, b, c]) s.close();
  });
  it("a shared result with an error goes out through graphql-ws, masked as any other: no internal message reaches the socket", async () => {
    const videoId = await createVideo(t, "masked");
    const [a, b] = [
      await rawSubscriber(ADMIN_AUTH.authorization, "a", EVENT_DESCRIPTIONS, videoId),
      await rawSubscriber(ADMIN_AUTH.authorization, "b", EVENT_DESCRIPTIONS, videoId),
    ];
    const video = await snapshotOf(t, videoId);
    // A row's version that is no date: reading its CMS fields throws a RangeError inside the resolver.
    t.app.services.pubSub.publish("videoEvents", videoId, {
      ...renderProgress(video, 0),
      video: { ...video, updatedAt: "not a date" },
    });
    t.app.services.pubSub.publish("videoEvents", videoId, renderProgress(video, 1));
    await until(() => [a, b].every((s) => s.frames.length === 4), 5000);
    for (const [s, id] of [
      [a, "a"],
      [b, "b"],
    ] as const) {
      const [failed, next] = [JSON.parse(s.frames[2]!), JSON.parse(s.frames[3]!)];
      expect(failed).toMatchObject({ id, type: "next", payload: { errors: [{ message: "Unexpected error." }] } });
      expect(s.frames[2]).not.toContain("Invalid time value");
      // What comes after it is written to the socket again, in order.
      expect(next).toMatchObject({
        id,
        type: "next",
        payload: { data: { videoEvents: { __typename: "RenderProgressEvent" } } },
      });
    }
    for (const s of [a, b]) s.close();
  });

  it("written to each socket as it comes: in order, none after a client's complete, a late joiner from its own state, complete after the last", async () => {
    const videoId = await createVideo(t, "direct");
    const admin = ADMIN_AUTH.authorization;
    const [a, b, c] = [
      await rawSubscriber(admin, "a", EVENT_INDEXES, videoId),
      await rawSubscriber(admin, "b", EVENT_INDEXES, videoId),
      await rawSubscriber(admin, "c", EVENT_INDEXES, videoId),
    ];
    const video = await snapshotOf(t, videoId);
    const indexes = (frames: string[], id: string) =>
      frames
        .map((f) => JSON.parse(f))
        .filter((m) => m.id === id && m.type === "next" && m.payload.data.videoEvents.index !== undefined)
        .map((m) => m.payload.data.videoEvents.index as number);
    for (let i = 0; i < 5; i++) t.app.services.pubSub.publish("videoEvents", videoId, renderProgress(video, i));
    await until(
      () => [a, b, c].every((s) => indexes(s.frames, s === a ? "a" : s === b ? "b" : "c").length === 5),
      5000,
    );
    a.send({ id: "a", type: "complete" });
    await sleep(100);
    const aFrames = a.frames.length;
    for (let i = 5; i < 8; i++) t.app.services.pubSub.publish("videoEvents", videoId, renderProgress(video, i));
    await until(() => indexes(c.frames, "c").length === 8, 5000);
    const d = await rawSubscriber(admin, "d", EVENT_INDEXES, videoId);
    expect(JSON.parse(d.frames[1]!).payload.data.videoEvents).toEqual({
      __typename: "VideoStatusEvent",
      video: { status: "WAITING_FOR_UPLOAD" },
    });
    for (let i = 8; i < 10; i++) t.app.services.pubSub.publish("videoEvents", videoId, renderProgress(video, i));
    const canceled = await t.app.services.db.video.update({ where: { id: videoId }, data: { status: "CANCELED" } });
    t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(canceled) });
    const ended = (s: { frames: string[] }, id: string) =>
      s.frames.some((f) => f === `{"id":"${id}","type":"complete"}`);
    await until(() => ended(b, "b") && ended(c, "c") && ended(d, "d"), 5000);
    await sleep(100);
    expect(a.frames).toHaveLength(aFrames);
    expect(indexes(a.frames, "a")).toEqual([0, 1, 2, 3, 4]);
    for (const [s, id] of [
      [b, "b"],
      [c, "c"],
    ] as const)
      expect(indexes(s.frames, id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(indexes(d.frames, "d")).toEqual([8, 9]);
    for (const [s, id] of [
      [b, "b"],
      [c, "c"],
      [d, "d"],
    ] as const) {
      const [last, beforeLast] = [JSON.parse(s.frames.at(-1)!), JSON.parse(s.frames.at(-2)!)];
      expect(last).toEqual({ id, type: "complete" });
      expect(beforeLast.payload.data.videoEvents).toEqual({
        __typename: "VideoStatusEvent",
        video: { status: "CANCELED" },
      });
    }
    for (const s of [a, b, c, d]) s.close();
  });
});

describe("connections of a credential other live connections hold", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await defaultApp();
  });

  it("open without a key lookup of their own, and end with the others when the key is revoked", async () => {
    const videoId = await createVideo(t, "one key, many sockets");
    const { key, secret } = await createApiKey(t.app.services.db, {
      tenantId: DEFAULT_TENANT_ID,
      name: "front ends",
      scopes: ["videos:read"],
    });
    const first = follow(t.wsClient(bearer(secret)), EVENT_TYPES, videoId);
    await first.first;
    const apiKeys = t.app.services.db.apiKey as unknown as { findUnique: (...args: unknown[]) => Promise<unknown> };
    const findUnique = apiKeys.findUnique;
    let lookups = 0;
    apiKeys.findUnique = (...args: unknown[]) => {
      lookups++;
      return findUnique.apply(apiKeys, args);
    };
    try {
      const more = Array.from({ length: 5 }, () => follow(t.wsClient(bearer(secret)), EVENT_TYPES, videoId));
      await Promise.all(more.map((m) => m.first));
      expect(lookups).toBe(0);
      await revokeApiKey(t.app.services.db, key.id);
      const ends = (await Promise.all([first, ...more].map((m) => m.end))) as { code?: number }[];
      expect(ends.map((e) => e.code)).toEqual(Array.from({ length: 6 }, () => 4403));
      // No live connection holds it now: a new one is looked up, and refused.
      await expect(follow(t.wsClient(bearer(secret)), EVENT_TYPES, videoId).first).rejects.toMatchObject({
        code: 4403,
      });
      expect(lookups).toBeGreaterThan(0);
    } finally {
      apiKeys.findUnique = findUnique;
    }
  });
});

describe("subscribers arriving at once share the read of their video's current state", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await defaultApp();
  });

  /**
   * The app's database client with `video.findUnique` counted; each read runs at once and its row
   * is handed back when `release` is called (all at once by default).
   */
  function countingDb(options: { holdReads?: boolean } = {}) {
    const db = t.app.services.db;
    const held: (() => void)[] = [];
    const counter = {
      reads: 0,
      /** Reads that have their row (held or not). */
      answered: 0,
      release: () => {
        for (const go of held.splice(0)) go();
      },
      db: new Proxy(db, {
        get: (target, key) =>
          key === "video"
            ? new Proxy(target.video, {
                get: (video, method) =>
                  method === "findUnique"
                    ? async (args: Parameters<typeof video.findUnique>[0]) => {
                        counter.reads++;
                        const row = await video.findUnique(args);
                        counter.answered++;
                        if (options.holdReads) await new Promise<void>((go) => held.push(go));
                        return row;
                      }
                    : Reflect.get(video, method),
              })
            : Reflect.get(target, key),
      }) as typeof db,
    };
    return counter;
  }

  const contextOf = (db: Context["db"], tenantId: string) =>
    ({
      db,
      pubSub: t.app.services.pubSub,
      auth: { kind: "apiKey", tenantId, scopes: new Set(["videos:read"]), subject: "test", expiresAt: null },
    }) as unknown as Context;

  it("fifty subscribers of one video opened at once cost at most two reads and share the first event", async () => {
    const videoId = await createVideo(t, "storm");
    const counter = countingDb();
    const streams = await Promise.all(
      Array.from({ length: 50 }, () => followVideoEvents(contextOf(counter.db, DEFAULT_TENANT_ID), videoId)),
    );
    const firsts = await Promise.all(streams.map((s) => s!.next()));
    expect(counter.reads).toBeGreaterThan(0);
    expect(counter.reads).toBeLessThanOrEqual(2);
    expect(firsts[0]!.value).toMatchObject({ kind: "status", video: { id: videoId } });
    expect(new Set(firsts.map((f) => f.value)).size).toBe(counter.reads);
    await Promise.all(streams.map((s) => s!.return(undefined)));
  });

  it("another tenant's subscriber sharing the read of a video is told it does not exist", async () => {
    const videoId = await createVideo(t, "not theirs");
    const other = await t.app.services.db.tenant.create({ data: { name: `tenant-${crypto.randomUUID()}` } });
    const counter = countingDb();
    // The first asker's read is sent at once; the two after it share the next one.
    const [first, theirs, mine] = await Promise.all([
      followVideoEvents(contextOf(counter.db, DEFAULT_TENANT_ID), videoId),
      followVideoEvents(contextOf(counter.db, other.id), videoId),
      followVideoEvents(contextOf(counter.db, DEFAULT_TENANT_ID), videoId),
    ]);
    expect(counter.reads).toBe(2);
    expect(first).not.toBeNull();
    expect(mine).not.toBeNull();
    expect(theirs).toBeNull();
    await Promise.all([first!.return(undefined), mine!.return(undefined)]);
  });

  it("one arriving just after another's read starts from it while nothing was published since, and reads again once something was", async () => {
    const videoId = await createVideo(t, "one after another");
    const counter = countingDb();
    const ctx = () => contextOf(counter.db, DEFAULT_TENANT_ID);
    const a = (await followVideoEvents(ctx(), videoId))!;
    const firstOfA = (await a.next()).value;
    // A's read is done: B, arriving after it with nothing published since, is handed the same event.
    const b = (await followVideoEvents(ctx(), videoId))!;
    expect((await b.next()).value).toBe(firstOfA);
    // Another tenant's subscriber handed that read is told the video does not exist.
    const other = await t.app.services.db.tenant.create({ data: { name: `tenant-${crypto.randomUUID()}` } });
    expect(await followVideoEvents(contextOf(counter.db, other.id), videoId)).toBeNull();
    expect(counter.reads).toBe(1);
    const renamed = await t.app.services.db.video.update({
      where: { id: videoId },
      data: { title: "renamed after A's read" },
    });
    t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(renamed) });
    expect((await a.next()).value).toMatchObject({ video: { title: "renamed after A's read" } });
    // The hub has taken that event (A and B still follow): C, arriving after it, must read the row again.
    const c = (await followVideoEvents(ctx(), videoId))!;
    expect(counter.reads).toBe(2);
    expect((await c.next()).value).toMatchObject({ video: { title: "renamed after A's read" } });
    await Promise.all([a.return(undefined), b.return(undefined), c.return(undefined)]);
  });

  it("a subscriber arriving while a read is in flight is not handed that read: it sees what changed since", async () => {
    const videoId = await createVideo(t, "in flight");
    const counter = countingDb({ holdReads: true });
    // A's read runs now, before the change below, and comes back only on release.
    const a = followVideoEvents(contextOf(counter.db, DEFAULT_TENANT_ID), videoId);
    await until(() => counter.answered === 1, 5000);
    const failed = await t.app.services.db.video.update({
      where: { id: videoId },
      data: { status: "FAILED", error: "changed while A's read was in flight" },
    });
    t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(failed) });
    // B starts listening after that event: only a read sent after it listened can show it the change.
    const b = followVideoEvents(contextOf(counter.db, DEFAULT_TENANT_ID), videoId);
    await sleep(50);
    counter.release();
    const streamA = (await a)!;
    expect((await streamA.next()).value).toMatchObject({ video: { status: "WAITING_FOR_UPLOAD" } });
    expect((await streamA.next()).value).toMatchObject({ video: { status: "FAILED" } });
    await until(() => counter.answered === 2, 5000);
    counter.release();
    const streamB = (await b)!;
    expect((await streamB.next()).value).toMatchObject({ video: { status: "FAILED" } });
    await Promise.all([streamA.return(undefined), streamB.return(undefined)]);
  });
});

describe("a subscriber far behind", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await defaultApp();
  });

  it(`holds at most ${MAX_QUEUED_VIDEO_EVENTS} events: past that it is handed the video's current state instead`, async () => {
    const videoId = await createVideo(t, "far behind");
    const ctx = {
      db: t.app.services.db,
      pubSub: t.app.services.pubSub,
      auth: {
        kind: "apiKey",
        tenantId: DEFAULT_TENANT_ID,
        scopes: new Set(["videos:read"]),
        subject: "t",
        expiresAt: null,
      },
    } as unknown as Context;
    const stream = (await followVideoEvents(ctx, videoId))!;
    expect((await stream.next()).value).toMatchObject({ kind: "status" });
    // Events travel through Postgres: a second subscriber that reads tells when they have all arrived.
    const witness = (await followVideoEvents(ctx, videoId))!;
    await witness.next();
    const video = await snapshotOf(t, videoId);
    // Nobody pulls the stream meanwhile: they queue up, two past the bound.
    for (let i = 0; i < MAX_QUEUED_VIDEO_EVENTS + 2; i++) {
      t.app.services.pubSub.publish("videoEvents", videoId, {
        kind: "renderProgress",
        video,
        index: i,
        count: null,
        percent: 0,
        description: null,
        renderedCount: i,
        cachedCount: 0,
      });
    }
    for (let last = -1; last < MAX_QUEUED_VIDEO_EVENTS + 1; ) {
      const event = (await witness.next()).value as VideoEventPayload;
      if (event.kind === "renderProgress") last = event.index;
    }
    await witness.return(undefined);
    const canceled = await t.app.services.db.video.update({ where: { id: videoId }, data: { status: "CANCELED" } });
    // The backlog was dropped for one catch-up: the row as it is now, then the end (CANCELED is final).
    expect((await stream.next()).value).toMatchObject({ kind: "status", video: { status: canceled.status } });
    expect((await stream.next()).done).toBe(true);
  });
});

describe("slow consumers", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { WS_MAX_BUFFERED_BYTES: "65536" } });
  });
  afterAll(() => t?.stop());

  const RENDER_PROGRESS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) {
    __typename ... on RenderProgressEvent { index description } } }`);

  it(`a client that stops reading is closed with ${SLOW_CONSUMER_CLOSE_CODE}; a reader of the same video gets every event in order`, async () => {
    const videoId = await createVideo(t, "slow consumer");
    let stalledSocket: { _socket: Socket } | null = null;
    const stalledClient = t.wsClient();
    stalledClient.on("connected", (socket) => {
      stalledSocket = socket as { _socket: Socket };
    });
    const stalledClosed = new Promise<{ code: number; reason: string }>((resolve) =>
      stalledClient.on("closed", (e) => resolve(e as never)),
    );
    const stalled = follow(stalledClient, RENDER_PROGRESS, videoId);
    const readerClient = t.wsClient();
    let readerClosed: number | null = null;
    readerClient.on("closed", (e) => {
      readerClosed = (e as { code: number }).code;
    });
    const reader = follow(readerClient, RENDER_PROGRESS, videoId);
    await Promise.all([stalled.first, reader.first]);
    stalledSocket!._socket.pause();

    // Loopback's socket buffers take a few MB before anything waits in the server: send well past that, as
    // NOTIFYs from another instance. In batches, each sent once the reader has read the one before: the reader
    // runs in this process, beside the server, and must not itself fall 256 KiB behind on a busy machine (it
    // would be closed as a slow consumer too); the stalled client gets everything and reads nothing.
    const video = await snapshotOf(t, videoId);
    const description = "x".repeat(5500);
    const count = 1500;
    const batch = 100;
    const payloads = Array.from({ length: count }, (_, index) => {
      const event: VideoEventPayload = {
        kind: "renderProgress",
        video,
        index,
        count,
        percent: 0,
        description,
        renderedCount: index,
        cachedCount: 0,
      };
      return notificationPayload(`videoEvents:${videoId}`, event);
    });
    const notifier = new pg.Client({ connectionString: t.database.url });
    await notifier.connect();
    try {
      for (let sent = 0; sent < count; sent += batch) {
        await notifier.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n", [
          EVENTS_CHANNEL,
          payloads.slice(sent, sent + batch),
        ]);
        const readUpTo = 1 + Math.min(sent + batch, count);
        await until(() => reader.results.length === readUpTo || readerClosed !== null, 30_000);
        expect(readerClosed, "the reader was closed").toBeNull();
      }
    } finally {
      await notifier.end();
    }
    const indexes = reader.results
      .slice(1)
      .map((r) => expectTypename(r.data!.videoEvents, "RenderProgressEvent").index);
    expect(indexes).toEqual(Array.from({ length: count }, (_, i) => i));

    // What the server sent before closing is read first, then the close frame.
    await sleep(1500);
    stalledSocket!._socket.resume();
    const closed = await Promise.race([stalledClosed, sleep(20_000).then(() => "still open" as const)]);
    expect(closed).toMatchObject({ code: SLOW_CONSUMER_CLOSE_CODE, reason: expect.stringContaining("Slow consumer") });
    expect(stalled.results.length).toBeLessThan(1 + count);
  }, 120_000);
});

describe("the connection cap", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { WS_MAX_CONNECTIONS: "2" } });
  });
  afterAll(() => t?.stop());

  it(`connections beyond WS_MAX_CONNECTIONS are closed with ${TRY_AGAIN_LATER_CLOSE_CODE}; the others stay served`, async () => {
    const videoId = await createVideo(t, "cap");
    const served = [follow(t.wsClient(), EVENT_TYPES, videoId), follow(t.wsClient(), EVENT_TYPES, videoId)];
    await Promise.all(served.map((s) => s.first));
    const refusedClient = t.wsClient();
    const refused = new Promise<{ code: number; reason: string }>((resolve) =>
      refusedClient.on("closed", (e) => resolve(e as never)),
    );
    const attempt = follow(refusedClient, EVENT_TYPES, videoId);
    await expect(attempt.first).rejects.toMatchObject({ code: TRY_AGAIN_LATER_CLOSE_CODE });
    expect(await refused).toMatchObject({
      code: TRY_AGAIN_LATER_CLOSE_CODE,
      reason: expect.stringMatching(/too many/i),
    });
    const before = served.map((s) => s.results.length);
    t.app.services.pubSub.publish("videoEvents", videoId, { kind: "status", video: await snapshotOf(t, videoId) });
    await until(() => served.every((s, i) => s.results.length === before[i]! + 1), 10_000);
  });
});

describe("operations on a socket reuse the principal it opened with, until the credential expires", () => {
  const JWT_SECRET = "a-shared-hs256-secret-of-at-least-32-chars";
  let t: TestApp;
  beforeAll(async () => {
    // No re-check during the test: only the expiry carried by the principal can refuse the second operation.
    t = await startTestApp({ worker: false, env: { JWT_SECRET, AUTH_RECHECK_SECONDS: "3600" } });
  });
  afterAll(() => t?.stop());

  it("a subscription started on the socket after its JWT expired is refused", async () => {
    const videoId = await createVideo(t, "expiring viewer");
    const token = await new SignJWT({ tenant_id: "default" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const client = t.wsClient(bearer(token));
    await follow(client, EVENT_TYPES, videoId).first;
    await sleep(3000);
    const late = follow(client, EVENT_TYPES, videoId);
    await expect(late.first).rejects.toMatchObject({ reason: expect.stringContaining("expired") });
  });
});
