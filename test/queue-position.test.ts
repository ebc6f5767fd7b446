import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTenant } from "../src/auth/api-keys.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { createVideoPubSub, type VideoEventMessage } from "../src/events/video-events.ts";
import { createQueueWatch } from "../src/jobs/queue-position.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

/**
 * The queue's estimates and the cost of publishing them, against real Postgres: rows written
 * directly, every query the watch issues counted through a Prisma extension.
 */
describe("queue positions: the simulation and one read per queue change", () => {
  let database: TestDatabase;
  let db: Db;
  let tenantId: string;
  let queries = 0;
  let counted: Db;
  /** While set, every query through `counted` waits for it first. */
  let gate: Promise<void> | null = null;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
    tenantId = (await ensureTenant(db, "queue")).id;
    counted = db.$extends({
      query: {
        async $allOperations({ args, query }) {
          queries++;
          if (gate) await gate;
          return query(args);
        },
      },
    }) as unknown as Db;
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  async function job(data: Record<string, unknown>) {
    const video = await db.video.create({ data: { tenantId, title: "q", status: "QUEUED" } });
    return db.job.create({ data: { videoId: video.id, kind: "TRANSCODE", dispatchedTo: "cpu", ...data } });
  }

  async function queueOf(waiting: number) {
    const now = Date.now();
    await db.job.deleteMany({});
    await db.worker.deleteMany({});
    await db.worker.create({ data: { id: "w1", capabilities: ["cpu"], slots: 2, lastHeartbeatAt: new Date() } });
    // A worker of another queue, and a dead one of this queue: neither counts.
    await db.worker.create({ data: { id: "w2", capabilities: ["manim"], slots: 4, lastHeartbeatAt: new Date() } });
    await db.worker.create({
      data: { id: "w3", capabilities: ["cpu"], slots: 4, lastHeartbeatAt: new Date(now - 3_600_000) },
    });
    // History: the queue's last job took twice its estimate.
    await job({
      status: "SUCCEEDED",
      estimatedWallSeconds: 10,
      wallSeconds: 20,
      startedAt: new Date(now - 60_000),
      finishedAt: new Date(now - 40_000),
    });
    // One slot busy: half done after 10 s, so 10 s to go; the other slot free.
    await job({ status: "RUNNING", progress: 0.5, startedAt: new Date(now - 10_000), heartbeatAt: new Date(now) });
    const queued = [];
    for (let i = 0; i < waiting; i++) {
      queued.push(await job({ status: "QUEUED", estimatedWallSeconds: 10 * (i + 1), dispatchedAt: new Date(now + i) }));
    }
    // Another queue's job is not in this line.
    await job({ status: "QUEUED", dispatchedTo: "manim", capability: "manim", dispatchedAt: new Date(now - 5000) });
    return queued;
  }

  it("starts each waiting job when a slot frees, each running its estimate × the measured factor", async () => {
    const queued = await queueOf(3);
    const watch = createQueueWatch({ db, pubSub: createVideoPubSub(undefined), aliveWithinSeconds: 90 });
    const positions = await watch.positions("cpu");
    expect(positions.map((p) => p.jobId)).toEqual(queued.map((j) => j.id));
    expect(positions.map((p) => p.position.position)).toEqual([1, 2, 3]);
    expect(positions.every((p) => p.position.slots === 2)).toBe(true);
    // Free slot at 0 and 10 s (plus the seconds since the rows were written: the running job's
    // remaining time grows with its elapsed time at half progress); job 1 (20 s) takes the free
    // one, job 2 (40 s) the one freeing at ~10, job 3 the first freeing after: job 1's, at 20.
    const starts = positions.map((p) => p.position.estimatedStartSeconds!);
    expect(starts[0]).toBe(0);
    expect(starts[1]).toBeGreaterThanOrEqual(10);
    expect(starts[1]).toBeLessThan(15);
    expect(starts[2]).toBeCloseTo(20, 6);
  });

  it("publishes one event per waiting video, with the same number of queries for 3 or 12 waiting jobs", async () => {
    const counts: number[] = [];
    for (const waiting of [3, 12]) {
      const queued = await queueOf(waiting);
      const pubSub = createVideoPubSub(undefined);
      const received = new Map<string, VideoEventMessage[]>();
      const listeners = queued.map(async (j) => {
        const sub = pubSub.subscribe("videoEvents", j.videoId)[Symbol.asyncIterator]();
        const { value } = await sub.next();
        received.set(j.videoId, [value]);
        await sub.return?.();
      });
      const watch = createQueueWatch({ db: counted, pubSub, aliveWithinSeconds: 90, coalesceMs: 10 });
      queries = 0;
      // Three changes in a burst are read once.
      watch.changed("cpu");
      watch.changed("cpu");
      watch.changed("cpu");
      await Promise.all(listeners);
      counts.push(queries);
      for (const [i, j] of queued.entries()) {
        const [event] = received.get(j.videoId)!;
        expect(event).toMatchObject({ kind: "queuePosition", video: { id: j.videoId }, position: { position: i + 1 } });
      }
    }
    expect(counts[0]).toBe(counts[1]);
    expect(counts[0]).toBeLessThanOrEqual(5);
  });

  it("once stopped (the API's stop, before its database closes) reads nothing more, and first finishes a publish under way", async () => {
    const queued = await queueOf(2);
    // A change still coalescing when the watch stops is dropped: no read after the stop.
    const idle = createQueueWatch({
      db: counted,
      pubSub: createVideoPubSub(undefined),
      aliveWithinSeconds: 90,
      coalesceMs: 50,
    });
    queries = 0;
    idle.changed("cpu");
    await idle.stop();
    idle.changed("cpu");
    await new Promise((r) => setTimeout(r, 200));
    expect(queries).toBe(0);

    // A publish that has started is finished before `stop` resolves: its events are out by then.
    const pubSub = createVideoPubSub(undefined);
    const published: string[] = [];
    const busy = createQueueWatch({
      db: counted,
      pubSub: {
        ...pubSub,
        publish: (...args: Parameters<typeof pubSub.publish>) => {
          published.push(args[1]);
          pubSub.publish(...args);
        },
      },
      aliveWithinSeconds: 90,
      coalesceMs: 1,
    });
    // Its reads held until the test lets them go: the publish is under way when the watch stops.
    let open = () => {};
    gate = new Promise((resolve) => {
      open = resolve;
    });
    busy.changed("cpu");
    await expect.poll(() => queries, { interval: 5 }).toBeGreaterThan(0);
    let stopped = false;
    const stopping = busy.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(stopped).toBe(false);
    gate = null;
    open();
    await stopping;
    expect(published.sort()).toEqual(queued.map((j) => j.videoId).sort());
  });

  it(`counts the wait for a dead GPU pool: a job on nvenc whose only GPU worker stopped heartbeating starts no \
sooner than GPU_FALLBACK_AFTER_SECONDS moves it to cpu, then waits its turn there`, async () => {
    const now = Date.now();
    await db.job.deleteMany({});
    await db.worker.deleteMany({});
    await db.worker.create({ data: { id: "cpu-1", capabilities: ["cpu"], slots: 1, lastHeartbeatAt: new Date() } });
    // Silent for 40 s: past JOB_STALL_SECONDS (30), so dead, though within the 90 s that count its slot.
    await db.worker.create({
      data: { id: "gpu-1", capabilities: ["nvenc"], slots: 1, lastHeartbeatAt: new Date(now - 40_000) },
    });
    const onGpu = { status: "QUEUED", dispatchedTo: "nvenc", capability: "cpu", estimatedWallSeconds: 10 };
    const first = await job({ ...onGpu, dispatchedAt: new Date(now - 10_000) });
    const second = await job({ ...onGpu, dispatchedAt: new Date(now - 5_000) });
    const watch = createQueueWatch({
      db,
      pubSub: createVideoPubSub(undefined),
      aliveWithinSeconds: 90,
      gpuFallback: { afterSeconds: 60, silentAfterSeconds: 30 },
    });
    const before = Date.now();
    const positions = await watch.positions("nvenc");
    const after = Date.now();
    expect(positions.map((p) => p.jobId)).toEqual([first.id, second.id]);
    const [a, b] = positions.map((p) => p.position.estimatedStartSeconds!);
    // Estimated at some moment between `before` and `after`, counted from `now` (the setup above takes
    // a loaded machine more than half a second): seconds from that moment to `at` seconds after `now`.
    const from = (at: number): [low: number, high: number] => [
      at - (after - now) / 1000 - 0.01,
      at - (before - now) / 1000 + 0.01,
    ];
    // 60 s fallback, 10 s of it waited; the idle cpu slot takes it then: 50 s after `now`.
    const [aLow, aHigh] = from(50);
    expect(a).toBeGreaterThanOrEqual(aLow);
    expect(a).toBeLessThanOrEqual(aHigh);
    // Moved to cpu 55 s after `now`, behind the first one's 10 s there: 60 s after `now`.
    const [bLow, bHigh] = from(60);
    expect(b).toBeGreaterThanOrEqual(bLow);
    expect(b).toBeLessThanOrEqual(bHigh);

    // A GPU worker heartbeating again: the nvenc queue is estimated on its own, from its free slot.
    await db.worker.update({ where: { id: "gpu-1" }, data: { lastHeartbeatAt: new Date() } });
    const alive = await watch.positions("nvenc");
    expect(alive.map((p) => p.position.estimatedStartSeconds)).toEqual([0, 10]);
  });

  it(`counts no slot of a worker that went silent (past JOB_STALL_SECONDS) and no slot freeing when its running job \
was to end: the next job waits for the live worker's`, async () => {
    const now = Date.now();
    await db.job.deleteMany({});
    await db.worker.deleteMany({});
    await db.worker.create({ data: { id: "live", capabilities: ["cpu"], slots: 1, lastHeartbeatAt: new Date(now) } });
    // Killed 40 s ago, nearly done: its job would have ended about 2 s from now.
    await db.worker.create({
      data: { id: "dead", capabilities: ["cpu"], slots: 1, lastHeartbeatAt: new Date(now - 40_000) },
    });
    const heard = (ago: number) => ({ heartbeatAt: new Date(now - ago), startedAt: new Date(now - ago) });
    await job({ status: "RUNNING", progress: 0.5, ...heard(0), startedAt: new Date(now - 10_000), workerId: "live" });
    await job({ status: "RUNNING", progress: 0.95, ...heard(40_000), workerId: "dead" });
    const waiting = await job({ status: "QUEUED", estimatedWallSeconds: 10, dispatchedAt: new Date(now) });
    const watch = createQueueWatch({ db, pubSub: createVideoPubSub(undefined), aliveWithinSeconds: 30 });
    const [only] = await watch.positions("cpu");
    expect(only!.jobId).toBe(waiting.id);
    expect(only!.position.slots).toBe(1);
    // The live worker's job: half done after 10 s, so 10 s to go.
    expect(only!.position.estimatedStartSeconds).toBeGreaterThanOrEqual(10);
  });

  it("tells the waiting videos when a worker goes silent, though nothing of the queue changed", async () => {
    await db.job.deleteMany({});
    await db.worker.deleteMany({});
    // Heard from 1 s ago, then never again: silent past the watch's 2 s a second from now.
    await db.worker.create({
      data: { id: "dying", capabilities: ["cpu"], slots: 1, lastHeartbeatAt: new Date(Date.now() - 1000) },
    });
    const waiting = await job({ status: "QUEUED", estimatedWallSeconds: 10, dispatchedAt: new Date() });
    const pubSub = createVideoPubSub(undefined);
    const watch = createQueueWatch({ db, pubSub, aliveWithinSeconds: 2, sweepMs: 200 });
    expect((await watch.positions("cpu"))[0]!.position.estimatedStartSeconds).toBe(0);
    const events = pubSub.subscribe("videoEvents", waiting.videoId)[Symbol.asyncIterator]();
    watch.start();
    try {
      const { value } = await events.next();
      expect(value).toMatchObject({
        kind: "queuePosition",
        position: { position: 1, slots: 0, estimatedStartSeconds: null },
      });
    } finally {
      await events.return?.();
      await watch.stop();
    }
  });

  it("gives no estimate while no live worker serves the queue, but still the position", async () => {
    await queueOf(2);
    await db.worker.deleteMany({ where: { id: "w1" } });
    const watch = createQueueWatch({ db, pubSub: createVideoPubSub(undefined), aliveWithinSeconds: 90 });
    const positions = await watch.positions("cpu");
    expect(positions.map((p) => [p.position.position, p.position.slots, p.position.estimatedStartSeconds])).toEqual([
      [1, 0, null],
      [2, 0, null],
    ]);
  });
});
