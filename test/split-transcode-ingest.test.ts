import { ContentKeys } from "../src/content-protection/content-keys.ts";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { createVideoPubSub, type VideoEventMessage } from "../src/events/video-events.ts";
import { cancelVideo } from "../src/jobs/cancel.ts";
import { DEFAULT_COST_SETTINGS } from "../src/costs/cost-model.ts";
import { createJob } from "../src/jobs/create-job.ts";
import { buildJobMessage } from "../src/jobs/job-messages.ts";
import { createPostgresTransport } from "../src/transport/postgres.ts";
import type { EventIngestor } from "../src/jobs/ingest-events.ts";
import type { ChunkRange, PlannedRung, PublishedSegments } from "../src/protocol/media-facts.ts";
import type { JobEvent, JobEventBody } from "../src/protocol/job-events.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { createTestEventIngestor, queuedWebhookTypes } from "./support/event-ingestor.ts";
import { LADDER_360P, PROBE_640X360, shuffle } from "./support/job-events.ts";
import { cancelDeps } from "./support/job-deps.ts";

/**
 * The API's side of a split transcode, driven by the events the workers send (the worker's side
 * is test/worker/split-transcode.test.ts, the whole flow test/split-transcode.test.ts): the chunks
 * queued once, each rung's playlist listing only chunks that follow the first without a gap,
 * ended and READY once every chunk is in, the same bytes when an event comes again, and a chunk
 * that fails for good failing the video and stopping the other runs.
 */
describe("split transcodes (ingest)", () => {
  let database: TestDatabase;
  let db: Db;
  let ingestor: EventIngestor;
  const written = new Map<string, string>();
  const canceled: string[] = [];
  const pubSub = createVideoPubSub(undefined);
  const probe = { ...PROBE_640X360, duration: 12 };
  /** The source as the split run probed it, for the chunks. */
  const source = { probe, format: "mov" };
  const videoRungs = LADDER_360P.filter((r) => r.kind === "VIDEO") as PlannedRung[];
  // 2 s segments after a 1 s first one: 0,1,3,5,7,9,11 s; chunks [0,2) [2,4) [4,7).
  const chunks: ChunkRange[] = [
    { index: 0, fromSegment: 0, toSegment: 2, fromSeconds: 0, toSeconds: 3 },
    { index: 1, fromSegment: 2, toSegment: 4, fromSeconds: 3, toSeconds: 7 },
    { index: 2, fromSegment: 4, toSegment: 7, fromSeconds: 7, toSeconds: 12 },
  ];

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
    ingestor = createTestEventIngestor(db, {
      pubSub,
      storage: {
        async write(key, body) {
          const parts: Buffer[] = [];
          for await (const part of body) parts.push(Buffer.from(part));
          written.set(key, Buffer.concat(parts).toString("utf8"));
          return Buffer.concat(parts).length;
        },
        async readText(key) {
          return written.get(key) ?? null;
        },
        async deletePrefix() {},
      },
      onCanceledJobReported: async (jobId) => {
        canceled.push(jobId);
      },
    });
  });
  afterAll(async () => {
    await db.$disconnect();
    await database.drop();
  });

  /** Marks jobs handed to a worker, as the dispatcher does when it publishes them. */
  const dispatch = async (...ids: string[]) => {
    await db.job.updateMany({ where: { id: { in: ids } }, data: { dispatchedAt: new Date() } });
  };

  /** A processing video with its transcode running. */
  async function runningTranscode(segmentFormat: "TS" | "FMP4" = "TS") {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "PROCESSING", sourceKey: "s", segmentFormat },
    });
    const job = await db.$transaction((tx) =>
      createJob(tx, { kind: "TRANSCODE", videoId: video.id, input: {}, maxAttempts: 2 }, DEFAULT_COST_SETTINGS),
    );
    await dispatch(job.id);
    return { videoId: video.id, jobId: job.id };
  }

  const seqs = new Map<string, number>();
  /**
   * Sends events of a run of a job (its `attempt` on `workerId`, the delivery `runId`; none, as from
   * workers older than run ids, by default) to `through` (another API instance's ingestor), in order
   * after those that run sent before (each run's sequence starts at 1).
   */
  const sendRun = async (
    through: EventIngestor,
    jobId: string,
    { attempt = 1, workerId = "w", runId }: { attempt?: number; workerId?: string; runId?: string },
    ...bodies: JobEventBody[]
  ) => {
    const run = `${jobId}/${attempt}/${workerId}/${runId}`;
    const events = bodies.map((b) => {
      const seq = (seqs.get(run) ?? 0) + 1;
      seqs.set(run, seq);
      const at = new Date().toISOString();
      return { ...b, v: PROTOCOL_VERSION, jobId, attempt, seq, workerId, ...(runId ? { runId } : {}), at };
    });
    await through.ingest(events as JobEvent[]);
  };
  const sendThrough = (through: EventIngestor, jobId: string, ...bodies: JobEventBody[]) =>
    sendRun(through, jobId, {}, ...bodies);
  const send = (jobId: string, ...bodies: JobEventBody[]) => sendThrough(ingestor, jobId, ...bodies);

  /** Each video rung's segments of a chunk: 1 s for segment 0, 2 s after, as `job.split` planned them. */
  const segmentsOf = (chunk: ChunkRange, ext = "ts"): PublishedSegments[] =>
    videoRungs.map((r) => ({
      name: r.name,
      segments: Array.from({ length: chunk.toSegment - chunk.fromSegment }, (_, i) => {
        const n = chunk.fromSegment + i;
        return { uri: `seg_${String(n).padStart(5, "0")}.${ext}`, duration: n === 0 ? 1 : n === 6 ? 1 : 2 };
      }),
    }));

  const chunkJobs = (parentId: string) =>
    db.job.findMany({ where: { parentId, kind: "TRANSCODE_CHUNK" }, orderBy: { createdAt: "asc" } });
  const playlist = (videoId: string, rung: string) => written.get(`videos/${videoId}/hls/${rung}/index.m3u8`);
  const uris = (text: string | undefined) => (text ?? "").split("\n").filter((l) => l.startsWith("seg_"));

  async function splitAndFirstChunk(segmentFormat: "TS" | "FMP4" = "TS") {
    const { videoId, jobId } = await runningTranscode(segmentFormat);
    const ext = segmentFormat === "FMP4" ? "m4s" : "ts";
    await send(
      jobId,
      { type: "job.started" },
      { type: "job.probed", probe, ladder: LADDER_360P },
      { type: "job.split", chunks, ladder: videoRungs, source },
    );
    // A later attempt splitting again (or the event delivered twice) queues nothing more.
    await send(jobId, { type: "job.split", chunks, ladder: videoRungs, source });
    const queued = await chunkJobs(jobId);
    return { videoId, jobId, queued, ext };
  }

  it(`queues one chunk job per later chunk, once, with its range, the planned video rungs and the source as the split \
run probed it`, async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    expect(queued.map((j) => [j.status, j.capability, (j.input as { chunk: ChunkRange }).chunk])).toEqual([
      ["QUEUED", "cpu", chunks[1]],
      ["QUEUED", "cpu", chunks[2]],
    ]);
    expect((queued[0]!.input as { ladder: PlannedRung[] }).ladder.map((r) => r.name)).toEqual(["360p", "144p"]);
    expect(queued.every((j) => j.parentId === jobId)).toBe(true);
    // What a chunk's worker is sent: the probe, so it does not probe the source again.
    const video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    const settings = {
      segmentSeconds: 2,
      maxDurationSeconds: 3600,
      contentKeys: new ContentKeys("a split transcode test's signing secret, 32+ bytes"),
      urlImport: { maxBytes: 1, allowPrivateAddresses: false },
    };
    for (const job of queued) expect(buildJobMessage(job, video, settings)).toMatchObject({ source });
    // Each estimated as a transcode of its part of the source (4 s and 5 s), its video rungs only.
    const [four, five] = queued.map((j) => j.estimatedCpuSeconds);
    expect(four).toBeGreaterThan(0);
    expect(five).toBeGreaterThan(four!);
  });

  it("re-estimates the split transcode as what its own run encodes: the estimates of the video's jobs add up to its work", async () => {
    const { jobId } = await runningTranscode();
    await send(jobId, { type: "job.started" }, { type: "job.probed", probe, ladder: LADDER_360P });
    const whole = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    await send(jobId, { type: "job.split", chunks, ladder: videoRungs });
    const parent = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    const queued = await chunkJobs(jobId);
    // The first chunk's 3 s of video and the whole audio, not the whole ladder's 12 s.
    expect(parent.estimatedCpuSeconds).toBeLessThan(whole.estimatedCpuSeconds!);
    expect(parent.estimatedCostUsd).toBeLessThan(whole.estimatedCostUsd!);
    expect((parent.rungCosts as { name: string }[]).map((r) => r.name)).toEqual(LADDER_360P.map((r) => r.name));
    // Every part of the source is counted once: the three jobs and the audio pass add only their start-up.
    const total = [parent, ...queued].reduce((sum, j) => sum + j.estimatedCpuSeconds!, 0);
    expect(total).toBeCloseTo(whole.estimatedCpuSeconds! + 3 * DEFAULT_COST_SETTINGS.cpu.jobOverheadCpuSeconds, 6);
  });

  it("lists chunks in order as they end, ends the playlists and makes the video READY with the last", async () => {
    const { videoId, jobId, queued, ext } = await splitAndFirstChunk("FMP4");
    await send(jobId, {
      type: "job.succeeded",
      masterKey: `videos/${videoId}/hls/master.m3u8`,
      posterKey: null,
      firstChunk: { targetDuration: 2, variants: segmentsOf(chunks[0]!, ext) },
    });
    // The first run ended: playable, not READY; its own segments stay listed as it published them.
    let video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect([video.status, video.playable]).toEqual(["PROCESSING", true]);
    expect(uris(playlist(videoId, "360p"))).toEqual(["seg_00000.m4s", "seg_00001.m4s"]);
    expect(playlist(videoId, "360p")).toContain('#EXT-X-MAP:URI="init.mp4"');
    expect(playlist(videoId, "360p")).not.toContain("#EXT-X-ENDLIST");

    // The last chunk before the middle one: nothing new can be listed after the gap.
    const [middle, last] = queued as [(typeof queued)[0], (typeof queued)[0]];
    await dispatch(...queued.map((j) => j.id));
    await send(
      last.id,
      { type: "job.started" },
      { type: "chunk.succeeded", chunk: 2, variants: segmentsOf(chunks[2]!, ext) },
    );
    expect(uris(playlist(videoId, "360p"))).toEqual(["seg_00000.m4s", "seg_00001.m4s"]);
    video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect(video.status).toBe("PROCESSING");

    await send(
      middle.id,
      { type: "job.started" },
      { type: "chunk.succeeded", chunk: 1, variants: segmentsOf(chunks[1]!, ext) },
    );
    const text = playlist(videoId, "144p")!;
    expect(uris(text)).toEqual([0, 1, 2, 3, 4, 5, 6].map((n) => `seg_0000${n}.m4s`));
    expect(text).toContain("#EXT-X-ENDLIST");
    expect(text).toContain("#EXT-X-TARGETDURATION:2");
    const ready = await db.video.findUniqueOrThrow({ where: { id: videoId }, include: { variants: true } });
    expect(ready.status).toBe("READY");
    const variants = Object.fromEntries(ready.variants.map((v) => [v.name, [v.status, v.segmentCount]]));
    expect(variants["360p"]).toEqual(["READY", 7]);
    expect(variants["144p"]).toEqual(["READY", 7]);

    // The same end again writes the same bytes and changes nothing.
    const before = playlist(videoId, "360p");
    await send(middle.id, { type: "chunk.succeeded", chunk: 1, variants: segmentsOf(chunks[1]!, ext) });
    expect(playlist(videoId, "360p")).toBe(before);
  });

  /** The figures of the next progress event of each video rung in `events`. */
  async function figuresIn(events: AsyncIterator<VideoEventMessage>) {
    const seen: unknown[] = [];
    while (seen.length < videoRungs.length) {
      const { value } = await events.next();
      if (value.kind === "variantProgress")
        seen.push({ fps: value.fps, speed: value.speed, etaSeconds: value.etaSeconds });
    }
    return seen;
  }
  const progressAt = (fraction: number, fps: number, speed: number, etaSeconds: number): JobEventBody => ({
    type: "job.progress",
    progress: fraction,
    fps,
    speed,
    etaSeconds,
    variants: videoRungs.map((r) => ({ name: r.name, progress: fraction, segmentCount: 0 })),
  });
  const each = (figures: object) => videoRungs.map(() => figures);

  it(`sends the whole transcode's figures while it is split: its encoding runs' fps and speed summed, the ETA of all \
the media left`, async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const [middle, last] = queued as [(typeof queued)[0], (typeof queued)[0]];
    await dispatch(middle.id);
    const events = pubSub.subscribe("videoEvents", videoId);
    try {
      // The first run (3 s of the 12 s source) a third through: it alone encodes, its figures are the whole's.
      // Left: 2 s of its chunk, 4 s and 5 s queued, 11 s at 2× is 5.5 s.
      await send(jobId, progressAt(1 / 3, 60, 2, 1));
      expect(await figuresIn(events)).toEqual(each({ fps: 60, speed: 2, etaSeconds: 6 }));
      // The middle chunk (4 s) starts and reports half done: both runs encode, side by side.
      // Left: 2 s + 2 s + 5 s = 9 s at 2× + 1× = 3×.
      await send(middle.id, { type: "job.started" }, progressAt(0.5, 30, 1, 2));
      expect(await figuresIn(events)).toEqual(each({ fps: 90, speed: 3, etaSeconds: 3 }));
      // A chunk that is not running (the last, queued) counts for its media, never for its figures.
      expect(last.status).toBe("QUEUED");
    } finally {
      await events.return?.();
    }
  });

  it("adds up the runs whichever API instance took their events", async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const middle = queued[0]!;
    await dispatch(middle.id);
    // A second API instance on the same database, with its own fan-out: it took none of the first run's events.
    const otherPubSub = createVideoPubSub(undefined);
    const other = createTestEventIngestor(db, { pubSub: otherPubSub });
    const events = otherPubSub.subscribe("videoEvents", videoId);
    try {
      await send(jobId, progressAt(1 / 3, 60, 2, 1));
      await sendThrough(other, middle.id, { type: "job.started" }, progressAt(0.5, 30, 1, 2));
      expect(await figuresIn(events)).toEqual(each({ fps: 90, speed: 3, etaSeconds: 3 }));
    } finally {
      await events.return?.();
    }
  });

  it("adds up the runs across API instances whose clocks are a minute apart: their figures' times are Postgres's", async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const middle = queued[0]!;
    await dispatch(middle.id);
    const otherPubSub = createVideoPubSub(undefined);
    const events = otherPubSub.subscribe("videoEvents", videoId);
    const instance = (skew: number) =>
      createTestEventIngestor(db, { pubSub: otherPubSub, clock: () => Date.now() + skew });
    try {
      await send(jobId, progressAt(1 / 3, 60, 2, 1));
      // A clock a minute ahead takes the first run's figures, just written, for a minute old.
      await sendThrough(instance(60_000), middle.id, { type: "job.started" }, progressAt(0.5, 30, 1, 2));
      expect(await figuresIn(events), "a minute ahead").toEqual(each({ fps: 90, speed: 3, etaSeconds: 3 }));
      // The first run last reported 20 s ago: a clock a minute behind would still count its figures.
      const first = await db.job.findUniqueOrThrow({ where: { id: jobId } });
      const figures = first.encoderFigures as { at: number };
      await db.job.update({ where: { id: jobId }, data: { encoderFigures: { ...figures, at: figures.at - 20_000 } } });
      await sendThrough(instance(-60_000), middle.id, progressAt(0.5, 30, 1, 2));
      // The middle chunk alone encodes: 2 s of the first run's, 2 s of its own and the last's 5 s at 1×.
      expect(await figuresIn(events), "a minute behind").toEqual(each({ fps: 30, speed: 1, etaSeconds: 9 }));
    } finally {
      await events.return?.();
    }
  });

  /** A split transcode whose middle chunk runs (worker "w", attempt 1) and has reported half done at 30 fps. */
  async function middleChunkHalfDone() {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const middle = queued[0]!;
    await dispatch(middle.id);
    const events = pubSub.subscribe("videoEvents", videoId);
    await send(middle.id, { type: "job.started" }, progressAt(0.5, 30, 1, 2));
    // The middle chunk alone encodes: left, the first run's 3 s, 2 s of its own and the last's 5 s.
    expect(await figuresIn(events)).toEqual(each({ fps: 30, speed: 1, etaSeconds: 10 }));
    // Its figures are written on its job too, where an instance that heard nothing reads them.
    expect((await db.job.findUniqueOrThrow({ where: { id: middle.id } })).encoderFigures).toMatchObject({ fps: 30 });
    return { jobId, middle, events };
  }

  /**
   * Has `report` send a progress event through this instance, then through a second ingestor on the
   * same database (which heard nothing before), and expects each to publish `figures`.
   */
  async function expectFiguresOnEachInstance(
    events: AsyncIterator<VideoEventMessage>,
    report: (through: EventIngestor) => Promise<void>,
    figures: object,
  ) {
    const other = createTestEventIngestor(db, { pubSub });
    for (const through of [ingestor, other]) {
      await report(through);
      expect(await figuresIn(events), through === ingestor ? "this instance" : "another instance").toEqual(
        each(figures),
      );
    }
  }

  /**
   * The first run reports (a third done, 60 fps at 2×) while the middle chunk's new run has not yet:
   * the first run's figures alone are the whole's, and all of the middle chunk's 4 s are left again
   * (2 s of the first chunk + 4 s + the last chunk's 5 s, at 2×).
   */
  const expectMiddleChunkStartedOver = (events: AsyncIterator<VideoEventMessage>, jobId: string) =>
    expectFiguresOnEachInstance(events, (through) => sendThrough(through, jobId, progressAt(1 / 3, 60, 2, 1)), {
      fps: 60,
      speed: 2,
      etaSeconds: 6,
    });

  it("counts a retried chunk's figures from its new attempt only, not those of the attempt that failed", async () => {
    const { jobId, middle, events } = await middleChunkHalfDone();
    try {
      await send(middle.id, { type: "job.failed", error: "the worker ran out of disk", retryable: true });
      expect(await db.job.findUniqueOrThrow({ where: { id: middle.id } })).toMatchObject({
        status: "QUEUED",
        attempt: 2,
      });
      await dispatch(middle.id);
      await sendRun(ingestor, middle.id, { attempt: 2 }, { type: "job.started" });
      // The failed attempt's 30 fps are not the new run's.
      await expectMiddleChunkStartedOver(events, jobId);
    } finally {
      await events.return?.();
    }
  });

  it("counts a retried first run from its new attempt only: it encodes the first chunk again", async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const middle = queued[0]!;
    await dispatch(middle.id);
    const events = pubSub.subscribe("videoEvents", videoId);
    try {
      await send(jobId, progressAt(1 / 3, 60, 2, 1));
      expect(await figuresIn(events)).toEqual(each({ fps: 60, speed: 2, etaSeconds: 6 }));
      await send(jobId, { type: "job.failed", error: "the worker ran out of disk", retryable: true });
      expect(await db.job.findUniqueOrThrow({ where: { id: jobId } })).toMatchObject({ status: "QUEUED", attempt: 2 });
      await dispatch(jobId);
      await sendRun(ingestor, jobId, { attempt: 2 }, { type: "job.started" });
      await send(middle.id, { type: "job.started" });
      // The middle chunk reports; the first run's new attempt has not. Left: the first chunk's 3 s
      // again, 2 s of the middle's and the last's 5 s, 10 s at 1×; its failed attempt's 60 fps are gone.
      await expectFiguresOnEachInstance(
        events,
        (through) => sendThrough(through, middle.id, progressAt(0.5, 30, 1, 2)),
        { fps: 30, speed: 1, etaSeconds: 10 },
      );
    } finally {
      await events.return?.();
    }
  });

  /** The job's runs were last heard of a minute ago, past the 30 s stall: a new delivery takes it over. */
  const silenceRuns = async (jobId: string) => {
    const silent = new Date(Date.now() - 60_000);
    await db.jobRun.updateMany({ where: { jobId }, data: { startedAt: silent, heartbeatAt: silent } });
  };

  it("counts a chunk taken over within its attempt from its new run only: it encodes its range again", async () => {
    const { jobId, middle, events } = await middleChunkHalfDone();
    try {
      // Its worker goes silent and the transport delivers the chunk to another worker: the same
      // attempt, a new run.
      await silenceRuns(middle.id);
      await sendRun(ingestor, middle.id, { workerId: "w2" }, { type: "job.started" });
      expect(await db.jobRun.findFirstOrThrow({ where: { jobId: middle.id, workerId: "w" } })).toMatchObject({
        status: "ABANDONED",
      });
      // The lost run's 30 fps and half done are not the new run's.
      await expectMiddleChunkStartedOver(events, jobId);
    } finally {
      await events.return?.();
    }
  });

  it("counts a chunk taken over by another delivery to the same worker from its new run only", async () => {
    const { jobId, middle, events } = await middleChunkHalfDone();
    try {
      // Its run stops reporting and the transport delivers the chunk again, to the same worker: the
      // same attempt and worker, a new run id.
      await silenceRuns(middle.id);
      const runId = randomUUID();
      await sendRun(ingestor, middle.id, { runId }, { type: "job.started" });
      expect(await db.job.findUniqueOrThrow({ where: { id: middle.id } })).toMatchObject({ workerId: "w", runId });
      // The lost run's 30 fps and half done are not the new run's, here nor on an instance that
      // read them from the job.
      await expectMiddleChunkStartedOver(events, jobId);
    } finally {
      await events.return?.();
    }
  });

  it("a chunk that fails for good fails the video and stops the other chunks' runs", async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const [middle, last] = queued as [(typeof queued)[0], (typeof queued)[0]];
    await dispatch(...queued.map((j) => j.id));
    await send(last.id, { type: "job.started" });
    await send(middle.id, { type: "job.started" }, { type: "job.failed", error: "the source broke", retryable: false });
    const video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect(video.status).toBe("FAILED");
    const jobs = await db.job.findMany({ where: { id: { in: [jobId, middle.id, last.id] } } });
    const status = Object.fromEntries(jobs.map((j) => [j.id, j.status]));
    expect([status[jobId], status[middle.id], status[last.id]]).toEqual(["CANCELED", "FAILED", "CANCELED"]);
    expect(canceled).toEqual(expect.arrayContaining([jobId, last.id]));
  });

  it("fails the video rather than list segments that do not follow each other", async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const [middle, last] = queued as [(typeof queued)[0], (typeof queued)[0]];
    await dispatch(...queued.map((j) => j.id));
    await send(jobId, {
      type: "job.succeeded",
      masterKey: `videos/${videoId}/hls/master.m3u8`,
      posterKey: null,
      firstChunk: { targetDuration: 2, variants: segmentsOf(chunks[0]!) },
    });
    await send(last.id, { type: "job.started" });
    // The middle chunk reports the last chunk's segments: segments 2 and 3 are missing.
    await send(
      middle.id,
      { type: "job.started" },
      { type: "chunk.succeeded", chunk: 1, variants: segmentsOf(chunks[2]!) },
    );
    expect(uris(playlist(videoId, "360p"))).toEqual(["seg_00000.ts", "seg_00001.ts"]);
    const video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect([video.status, video.playable]).toEqual(["FAILED", false]);
    expect(video.error).toMatch(/has seg_00004.ts where segment 2 belongs/);
    // The last chunk's run, still going, is stopped: nothing can make the video whole now.
    expect((await db.job.findUniqueOrThrow({ where: { id: last.id } })).status).toBe("CANCELED");
    expect(canceled).toContain(last.id);
  });

  it("canceling the split transcode's job cancels its chunks", async () => {
    const { videoId, jobId, queued } = await splitAndFirstChunk();
    const transport = createPostgresTransport({ connectionString: database.url, stallSeconds: 30 });
    await transport.start();
    try {
      const pubSub = createVideoPubSub(undefined);
      const { jobs } = await cancelVideo(cancelDeps({ db, pubSub, transport }), videoId, [jobId]);
      expect(jobs.map((j) => j.id).sort()).toEqual([jobId, ...queued.map((j) => j.id)].sort());
    } finally {
      await transport.stop();
    }
    const statuses = await db.job.findMany({ where: { videoId }, select: { status: true } });
    expect(statuses.map((j) => j.status)).toEqual(["CANCELED", "CANCELED", "CANCELED"]);
  });

  /** An event of a split transcode's runs: the first run's (`chunk` null) or a chunk's, addressed once its job is queued. */
  interface PlannedEvent {
    chunk: number | null;
    body: JobEventBody;
    seq: number;
    workerId: string;
    at: string;
  }

  /**
   * Every event a split transcode's runs send, in the order they send them: the first run (probe,
   * progress, playable, split, its audio rung, its end with the first chunk), and each later chunk's
   * run (start, progress, end), the chunks ending after the first run.
   */
  function splitTranscodeEvents(videoId: string): PlannedEvent[] {
    const hls = `videos/${videoId}/hls`;
    const audio = LADDER_360P.find((r) => r.kind === "AUDIO")!;
    const t0 = Date.parse("2026-11-22T10:00:00Z");
    const run = (chunk: number | null, workerId: string, fromSecond: number, bodies: JobEventBody[]) =>
      bodies.map((body, i) => ({
        chunk,
        body,
        seq: i + 1,
        workerId,
        at: new Date(t0 + (fromSecond + i) * 1000).toISOString(),
      }));
    const first: JobEventBody[] = [
      { type: "job.started" },
      { type: "job.probed", probe, ladder: LADDER_360P },
      progressAt(0.5, 60, 2, 1),
      { type: "video.playable", masterKey: `${hls}/master.m3u8` },
      { type: "job.split", chunks, ladder: videoRungs, source },
      { type: "variant.ready", name: audio.name, rung: audio, playlistKey: `${hls}/audio/index.m3u8`, segmentCount: 7 },
      {
        type: "job.succeeded",
        masterKey: `${hls}/master.m3u8`,
        posterKey: `videos/${videoId}/thumbnails/poster.jpg`,
        firstChunk: { targetDuration: 2, variants: segmentsOf(chunks[0]!), chunkCount: chunks.length },
        usage: { cpuSeconds: 6, wallSeconds: 3 },
      },
    ];
    const ofChunk = (index: number): JobEventBody[] => [
      { type: "job.started" },
      progressAt(0.5, 30, 1, 2),
      {
        type: "chunk.succeeded",
        chunk: index,
        variants: segmentsOf(chunks[index]!),
        usage: { cpuSeconds: 4, wallSeconds: 2 },
      },
    ];
    return [...run(null, "w0", 0, first), ...run(1, "w1", 5, ofChunk(1)), ...run(2, "w2", 6, ofChunk(2))];
  }

  /**
   * Sends `planned` in batches of up to `size`, a chunk's events to the job its chunk was queued as:
   * a batch ends before a chunk whose job is not queued yet (its split is in the batch). A chunk never
   * queued has no run, so nothing is sent for it.
   */
  async function sendPlanned(parentId: string, planned: PlannedEvent[], size: number) {
    let batch: JobEvent[] = [];
    const flush = async () => {
      if (batch.length > 0) await ingestor.ingest(batch);
      batch = [];
    };
    const jobOfChunk = async (index: number) =>
      (await chunkJobs(parentId)).find((j) => (j.input as { chunk: ChunkRange }).chunk.index === index);
    for (const { chunk, body, seq, workerId, at } of planned) {
      let jobId = parentId;
      if (chunk !== null) {
        let job = await jobOfChunk(chunk);
        if (!job) await flush();
        job ??= await jobOfChunk(chunk);
        if (!job) continue;
        jobId = job.id;
      }
      batch.push({ ...body, v: PROTOCOL_VERSION, jobId, attempt: 1, seq, workerId, at } as JobEvent);
      if (batch.length >= size) await flush();
    }
    await flush();
  }

  /** Everything a split transcode's events decide, without ids and the times rows were made. */
  async function splitOutcome(videoId: string) {
    const video = await db.video.findUniqueOrThrow({
      where: { id: videoId },
      include: {
        variants: { orderBy: { name: "asc" } },
        jobs: { include: { runs: { orderBy: { workerId: "asc" } } } },
      },
    });
    const { id, createdAt, updatedAt, variants, jobs, ...facts } = video;
    const text = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? String(v) : v));
    const named = <T>(value: T): T => JSON.parse(text(value).replaceAll(videoId, "V"));
    const chunkIndex = (j: (typeof jobs)[0]) =>
      j.kind === "TRANSCODE" ? -1 : (j.input as { chunk: ChunkRange }).chunk.index;
    return named({
      video: facts,
      variants: variants.map(({ id, videoId: _v, createdAt, updatedAt, ...v }) => v),
      jobs: jobs
        .sort((a, b) => chunkIndex(a) - chunkIndex(b))
        .map(({ id, videoId: _v, parentId, createdAt, updatedAt, dispatchedAt, runAfter, runs, ...j }) => ({
          ...j,
          parentId: parentId === null ? null : "the split transcode",
          runs: runs.map(({ id, jobId, ...r }) => r),
        })),
      playlists: videoRungs.map((r) => playlist(videoId, r.name)),
      webhooks: await queuedWebhookTypes(db, videoId),
    });
  }

  it(`every event of a split transcode twice, in shuffled order and in separate batches, ends as in order: the video \
READY, its rungs and playlists, each chunk queued once (a run's end before its split waits for it)`, async () => {
    // An endpoint for every event type, so that the webhooks each event queues are part of the outcome.
    await db.webhookEndpoint.create({
      data: { tenantId: DEFAULT_TENANT_ID, url: "http://127.0.0.1:9/hook", secret: "s", events: [] },
    });
    const reference = await runningTranscode();
    await sendPlanned(reference.jobId, splitTranscodeEvents(reference.videoId), 1);
    const expected = await splitOutcome(reference.videoId);
    expect(expected.video).toMatchObject({ status: "READY", playable: true, error: null });
    expect(expected.jobs.map((j) => j.status)).toEqual(["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]);
    expect(uris(expected.playlists[0])).toHaveLength(7);

    for (const seed of [1, 2, 3, 7, 11, 42, 77, 1234, 4321, 99_999]) {
      const { videoId, jobId } = await runningTranscode();
      const shuffled = shuffle([...splitTranscodeEvents(videoId), ...splitTranscodeEvents(videoId)], seed);
      // A chunk's job exists once the split is applied: its run's events come after.
      const split = shuffled.findIndex((p) => p.body.type === "job.split");
      const before = shuffled.slice(0, split);
      const order = [
        ...before.filter((p) => p.chunk === null),
        shuffled[split]!,
        ...before.filter((p) => p.chunk !== null),
        ...shuffled.slice(split + 1),
      ];
      await sendPlanned(jobId, order, 3);
      expect(await splitOutcome(videoId), `seed ${seed}`).toEqual(expected);
    }
  });

  /** The first run's end: the first chunk's segments, and the chunks it says it split the transcode into. */
  const firstRunEnd = (videoId: string, chunkCount?: number): JobEventBody => ({
    type: "job.succeeded",
    masterKey: `videos/${videoId}/hls/master.m3u8`,
    posterKey: null,
    firstChunk: {
      targetDuration: 2,
      variants: segmentsOf(chunks[0]!),
      ...(chunkCount === undefined ? {} : { chunkCount }),
    },
  });

  it("a split run's end that arrives before its split waits for it: the split then queues the chunks", async () => {
    const { videoId, jobId } = await runningTranscode();
    await send(jobId, { type: "job.started" }, { type: "job.probed", probe, ladder: LADDER_360P });
    await send(jobId, firstRunEnd(videoId, chunks.length));
    let video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect([video.status, video.playable, video.error]).toEqual(["PROCESSING", true, null]);
    await send(jobId, { type: "job.split", chunks, ladder: videoRungs, source });
    expect((await chunkJobs(jobId)).map((j) => (j.input as { chunk: ChunkRange }).chunk.index)).toEqual([1, 2]);
    video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect([video.status, video.playable]).toEqual(["PROCESSING", true]);
    expect(uris(playlist(videoId, "360p"))).toEqual(["seg_00000.ts", "seg_00001.ts"]);
  });

  it("fails the video when a split run's end and its split disagree on how many chunks there are", async () => {
    const { videoId, jobId } = await runningTranscode();
    await send(jobId, { type: "job.started" }, { type: "job.probed", probe, ladder: LADDER_360P });
    await send(jobId, { type: "job.split", chunks, ladder: videoRungs, source }, firstRunEnd(videoId, 4));
    const video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect([video.status, video.error]).toEqual([
      "FAILED",
      "The split transcode's run says it made 4 chunks, but its split made 3",
    ]);
  });

  it(`fails the video when a split run's end that does not count its chunks (older workers) finds none queued, rather \
than call its first chunk the video`, async () => {
    const { videoId, jobId } = await runningTranscode();
    await send(
      jobId,
      { type: "job.started" },
      { type: "job.probed", probe, ladder: LADDER_360P },
      firstRunEnd(videoId),
    );
    const video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect([video.status, video.error]).toEqual([
      "FAILED",
      "The split transcode's chunks were never queued; the video is incomplete",
    ]);
  });
});
