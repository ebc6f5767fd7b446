import { Readable } from "node:stream";
import type { DbTransaction as Tx } from "../../db/client.ts";
import { z } from "zod";
import { createDbClock } from "../../db/clock.ts";
import { type EncoderFigures, variantSnapshot, videoSnapshot } from "../../events/video-events.ts";
import { type Job, Prisma, type Variant } from "../../generated/prisma/client.ts";
import { log } from "../../log.ts";
import { PublishedSegments, RenditionBitRates } from "../../protocol/media-facts.ts";
import { hlsLayout, RUNG_INIT_SEGMENT, RUNG_PLAYLIST, videoPrefix } from "../../protocol/storage-layout.ts";
import { roundedEncoderFigures } from "../../shared/encoder-figures.ts";
import { mediaPlaylist, renditionBitRates, type SegmentBitRates } from "../../shared/media-playlist.ts";
import { MAX_PLAYLIST_BYTES, PLAYLIST_TYPE, withVariantBitRates } from "../../storage/playlists.ts";
import { videoWebhookData, webhookEventId } from "../../webhooks/events.ts";
import { cancelSplitFamily } from "../cancel.ts";
import { createJob, parseJobInput } from "../create-job.ts";
import { estimateChunk } from "../kinds/transcode-chunk.ts";
import { estimateSplitRun, recordActualCost, recordActualCostIn } from "../../costs/job-cost.ts";
import { lockVideo } from "../video-lock.ts";
import { type EventOf, type IngestDeps, publishVideoStatus } from "./ingest-deps.ts";
import { failVideoIn, type JobRunIngestor } from "./job-runs.ts";
import type { createTranscodeEventIngestor } from "./transcode-events.ts";

type TranscodeIngestor = ReturnType<typeof createTranscodeEventIngestor>;

/**
 * What a split transcode's job stores in `Job.output` once its run is done: each video rung's
 * segments, what the first run's audio rungs carry, and how many chunks the first run split the
 * transcode into (absent from older workers).
 */
const ChunkOutput = z.object({
  targetDuration: z.number().int().positive().optional(),
  variants: z.array(PublishedSegments),
  audioBitRates: z.array(RenditionBitRates).optional(),
  chunkCount: z.number().int().optional(),
});
type ChunkOutput = z.infer<typeof ChunkOutput>;

/** How many jobs' and rungs' latest progress the ingestor keeps for split transcodes in flight. */
const MAX_REMEMBERED = 10_000;

/**
 * How long a run's encoder figures count towards its split transcode's after it sent them: a run
 * reports about every second while it encodes (PROGRESS_INTERVAL_MS) and they are written at most
 * every PROGRESS_WRITE_INTERVAL_MS, so older figures are of a run that ended or stopped reporting.
 */
const FIGURES_FRESH_MS = 10_000;

/**
 * A run's encoder figures as `Job.encoderFigures` holds them: `at` in ms since the epoch by Postgres's
 * clock (every API instance compares it alike), `attempt`, `workerId` and `runId` the run that sent
 * them (a retried or taken-over run's figures are not its new run's).
 */
const RunFigures = z.object({
  fps: z.number().nullable(),
  speed: z.number().nullable(),
  at: z.number(),
  attempt: z.number().int(),
  workerId: z.string(),
  runId: z.string().default(""),
});
type RunFigures = z.infer<typeof RunFigures>;

/**
 * A run of a split transcode ended: its job SUCCEEDED, and the figures of its encode, which count
 * only while it runs, gone (a progress event it sent before its end may arrive after it).
 */
const ended = { status: "SUCCEEDED" as const, progress: 1, error: null, encoderFigures: Prisma.DbNull };

/**
 * A split transcode (docs/chunked-transcoding.md). The run that splits it says so (`job.split`) and
 * the API queues one `TRANSCODE_CHUNK` job per later chunk. That run encodes the first chunk and the
 * audio and ends with `job.succeeded` and `firstChunk`: its job SUCCEEDED, the video playable, not
 * READY. Each chunk ends with `chunk.succeeded`. As the runs end, the API lists the segments of every
 * chunk that follows the first without a gap in each video rung's playlist, under the video's lock:
 * a split video's playlists have one writer at a time (the first run's worker until its run ends,
 * then the API). Once every chunk is listed the playlists end and the video is READY.
 *
 * Its events may arrive in any order (docs/failure-model.md): each records its fact, and the video's
 * state is judged from all of them (`listChunksIn`) whenever one arrives. The first run's end
 * carries its chunk count, so an end that comes before its `job.split` waits for it rather than
 * fail the video; the split then queues the chunks.
 */
export function createSplitTranscodeIngestor(deps: IngestDeps, runs: JobRunIngestor, transcode: TranscodeIngestor) {
  const { db, webhooks } = deps;
  /** The time of the runs' figures: Postgres's, which every API instance reads alike. */
  const figuresClock = createDbClock(db, deps.clock);

  /**
   * Queues the chunks after the first, once per transcode (a later attempt that splits again finds
   * them queued). The split run's end may have come first: the split is still its attempt's, and
   * the video is judged once the chunks are queued.
   */
  async function onSplit(e: EventOf<"job.split">, videoId: string): Promise<void> {
    const queued = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const parent = await tx.job.findUnique({ where: { id: e.jobId } });
      if (parent?.kind !== "TRANSCODE" || parent.attempt !== e.attempt) return null;
      // Only a split run's end stores an output on a transcode's job.
      const ended = parent.status === "SUCCEEDED" && parent.output !== null;
      if (parent.status !== "QUEUED" && parent.status !== "RUNNING" && !ended) return null;
      const video = await tx.video.findUnique({ where: { id: videoId }, select: { status: true } });
      if (video?.status !== "QUEUED" && video?.status !== "PROCESSING") return null;
      if ((await tx.job.count({ where: { parentId: parent.id, kind: "TRANSCODE_CHUNK" } })) > 0) return null;
      for (const chunk of e.chunks.slice(1)) {
        const input = { chunk, ladder: e.ladder, ...(e.source ? { source: e.source } : {}) };
        await createJob(
          tx,
          { kind: "TRANSCODE_CHUNK", videoId, parentId: parent.id, input, maxAttempts: parent.maxAttempts },
          deps.costs,
        );
      }
      await estimateSplitRun(tx, deps.costs, parent.id, e.chunks[0]!);
      if (!ended) return { listed: null };
      // The run's actual cost was computed from the estimate the split just replaced.
      await recordActualCostIn(tx, deps.costs, parent.id);
      return { listed: await listChunksIn(tx, parent.id, videoId) };
    });
    if (!queued) return;
    log.info("transcode split into chunks", { jobId: e.jobId, chunks: e.chunks.length });
    deps.onJobRequeued(new Date());
    if (queued.listed) await afterListing(e.jobId, videoId, queued.listed);
  }

  /**
   * The split transcode's probe, arriving after its split (events arrive in any order): the chunks
   * were queued and the run re-estimated with no source to estimate from, so they are estimated
   * now, as they are when the probe comes first. The run's actual cost follows (`changesActualCost`).
   */
  async function onProbed(e: EventOf<"job.probed">, videoId: string): Promise<void> {
    await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const chunkJobs = (await tx.job.findMany({ where: { parentId: e.jobId, kind: "TRANSCODE_CHUNK" } })).map(
        (job) => ({ job, input: parseJobInput("TRANSCODE_CHUNK", job.input) }),
      );
      if (chunkJobs.length === 0) return;
      // The first chunk ends where the second starts.
      const toSeconds = Math.min(...chunkJobs.map(({ input }) => input.chunk.fromSeconds));
      await estimateSplitRun(tx, deps.costs, e.jobId, { fromSeconds: 0, toSeconds });
      for (const { job, input } of chunkJobs) {
        await tx.job.update({ where: { id: job.id }, data: await estimateChunk(tx, deps.costs, job, input) });
      }
    });
  }

  /** The first run of a split transcode ended: its chunk is published, the audio rungs are READY. */
  async function onFirstChunkSucceeded(e: EventOf<"job.succeeded">, videoId: string): Promise<void> {
    await runs.finishRun(e);
    const at = new Date(e.at);
    const output: ChunkOutput = e.firstChunk!;
    const done = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const { count } = await tx.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { ...ended, finishedAt: at, output },
      });
      if (!count) return null;
      await transcode.finishVideoIn(tx, e.jobId, videoId, e, at, "playable");
      return listChunksIn(tx, e.jobId, videoId);
    });
    if (!done) return;
    await afterListing(e.jobId, videoId, done);
  }

  async function onChunkSucceeded(e: EventOf<"chunk.succeeded">, videoId: string): Promise<void> {
    await runs.finishRun(e);
    const at = new Date(e.at);
    const output: ChunkOutput = { variants: e.variants };
    const done = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const job = await tx.job.findUnique({ where: { id: e.jobId } });
      if (job?.kind !== "TRANSCODE_CHUNK" || !job.parentId) return null;
      const { count } = await tx.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { ...ended, finishedAt: at, output },
      });
      if (!count) return null;
      return { ...(await listChunksIn(tx, job.parentId, videoId)), parentId: job.parentId };
    });
    if (!done) return;
    deps.progressWrites.forget(e.jobId);
    await afterListing(done.parentId ?? e.jobId, videoId, done);
  }

  /** Once the listing's transaction commits: its webhooks, the rungs made READY, the video's state. */
  async function afterListing(parentId: string, videoId: string, listed: Listed): Promise<void> {
    webhooks.flush();
    for (const job of listed.canceled ?? []) await deps.onCanceledJobReported(job.id, job.attempt);
    for (const variant of listed.readyVariants) await transcode.publishVariant(videoId, variant);
    if (listed.renditionsQueued) deps.onJobRequeued(new Date());
    if (listed.complete) {
      deps.progressWrites.forget(parentId);
      forgetProgress(videoId);
      // The transcode's own run ended before its rungs were READY and measured.
      await recordActualCost(db, deps.costs, parentId);
    }
    await publishVideoStatus(deps, videoId);
  }

  interface Listed {
    complete: boolean;
    readyVariants: Variant[];
    renditionsQueued: boolean;
    parentId?: string;
    /** The transcode's runs the listing canceled (it failed the video): their workers are told once it commits. */
    canceled?: Job[];
  }

  /**
   * Fails a split video its chunks cannot make whole, in `tx`: the video and its unfinished rungs,
   * its `video.failed` webhook, and the transcode's other runs canceled.
   */
  async function failSplitIn(tx: Tx, parent: Job, videoId: string, error: string, at: Date): Promise<Listed> {
    await failVideoIn(tx, videoId, error, at);
    const canceled = await cancelSplitFamily(tx, parent, error, at);
    const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
    if (video.status === "FAILED") {
      const eventId = webhookEventId("video.failed", videoId, video.finishedAt!.toISOString());
      await webhooks.emit(tx, videoId, "video.failed", eventId, { video: videoWebhookData(video) });
    }
    return { complete: false, readyVariants: [], renditionsQueued: false, canceled };
  }

  /**
   * Lists, in each video rung's playlist, the segments of every chunk that follows the first
   * without a gap, and ends the playlists (the rungs and the video READY) once every chunk is in.
   * The whole list is written again each time, from the jobs' outputs: applying it twice writes
   * the same bytes. A chunk whose segments do not follow the previous one's fails the video. What
   * it decides is dated by the latest end of the runs it lists, whichever event came last.
   */
  async function listChunksIn(tx: Tx, parentId: string, videoId: string): Promise<Listed> {
    const nothing: Listed = { complete: false, readyVariants: [], renditionsQueued: false };
    const parent = await tx.job.findUnique({ where: { id: parentId } });
    if (parent?.status !== "SUCCEEDED" || parent.output === null || !parent.finishedAt) return nothing;
    const video = await tx.video.findUnique({ where: { id: videoId } });
    if (video?.status !== "QUEUED" && video?.status !== "PROCESSING") return nothing;
    const chunkJobs = (await tx.job.findMany({ where: { parentId, kind: "TRANSCODE_CHUNK" } }))
      .map((job) => ({ job, chunk: parseJobInput("TRANSCODE_CHUNK", job.input).chunk }))
      .sort((a, b) => a.chunk.index - b.chunk.index);
    const first = ChunkOutput.parse(parent.output);
    // The run's end arrived before its split: the chunks are queued when the split arrives.
    if (chunkJobs.length === 0 && first.chunkCount !== undefined) return nothing;
    if (chunkJobs.length === 0) {
      // A split run's end that does not say how many chunks it made (older workers) with none
      // queued: the first chunk is not the whole video, and nothing will bring the rest.
      const error = "The split transcode's chunks were never queued; the video is incomplete";
      log.error("split transcode ended with no chunk queued; the video fails", { videoId, parentId });
      return failSplitIn(tx, parent, videoId, error, parent.finishedAt);
    }
    if (first.chunkCount !== undefined && first.chunkCount !== chunkJobs.length + 1) {
      const error = `The split transcode's run says it made ${first.chunkCount} chunks, but its split made ${chunkJobs.length + 1}`;
      log.error("split transcode's end and split disagree; the video fails", { videoId, parentId, error });
      return failSplitIn(tx, parent, videoId, error, parent.finishedAt);
    }
    const outputs: (ChunkOutput | null)[] = [
      first,
      ...chunkJobs.map(({ job }) =>
        job.status === "SUCCEEDED" && job.output !== null ? ChunkOutput.parse(job.output) : null,
      ),
    ];
    const listedCount = outputs.indexOf(null);
    const complete = listedCount === -1;
    const upTo = complete ? outputs.length : listedCount;
    const ends = [parent, ...chunkJobs.slice(0, upTo - 1).map(({ job }) => job)];
    const at = new Date(Math.max(...ends.map((job) => job.finishedAt?.getTime() ?? 0)));
    const hls = hlsLayout(videoPrefix(videoId));
    const targetDuration = first.targetDuration ?? 1;
    const map = video.segmentFormat === "FMP4" ? { map: RUNG_INIT_SEGMENT } : {};
    const segmentCounts = new Map<string, number>();
    const listed = first.variants.map(({ name }) => ({
      name,
      segments: outputs.slice(0, upTo).flatMap((o) => o!.variants.find((v) => v.name === name)?.segments ?? []),
    }));
    for (const { name, segments } of listed) {
      const gap = segments.findIndex((s, i) => segmentNumber(s.uri) !== i);
      if (gap === -1) continue;
      // No playlist may name a gap, and no later event can fill it: the video fails.
      const error = `The chunks of the split transcode do not join: the ${name} rung has ${segments[gap]!.uri} where segment ${gap} belongs`;
      log.error("split transcode's chunks do not join; the video fails", { videoId, parentId, error });
      return failSplitIn(tx, parent, videoId, error, at);
    }
    for (const { name, segments } of listed) {
      const text = mediaPlaylist(segments, { targetDuration, endList: complete, ...map });
      await deps.storage.write(hls.playlistKey(name), Readable.from([Buffer.from(text)]), {
        limit: MAX_PLAYLIST_BYTES,
        contentType: PLAYLIST_TYPE,
      });
      segmentCounts.set(name, segments.length);
    }
    if (!complete) return nothing;
    const measured = await measureMaster(hls.masterKey, listed, first, targetDuration);
    const readyVariants: Variant[] = [];
    const ladder = chunkJobs.length > 0 ? parseJobInput("TRANSCODE_CHUNK", chunkJobs[0]!.job.input).ladder : [];
    for (const rung of ladder) {
      const segmentCount = segmentCounts.get(rung.name);
      if (segmentCount === undefined) continue;
      const playlistKey = hls.playlistKey(rung.name);
      const bitRates = measured.get(rung.name);
      const ready = { name: rung.name, rung, playlistKey, segmentCount, at, ...(bitRates ? { bitRates } : {}) };
      const row = await transcode.readyVariantIn(tx, videoId, ready);
      if (row) readyVariants.push(row);
    }
    const made = { masterKey: hls.masterKey, posterKey: video.posterKey, storyboard: null };
    const renditionsQueued = await transcode.finishVideoIn(tx, parentId, videoId, made, at, "ready");
    return { complete: true, readyVariants, renditionsQueued };
  }

  /**
   * Once every chunk is listed: the master the first run published, with each variant's measured
   * rates (`withVariantBitRates`) where every segment of its video rung came with its bytes and the
   * first run measured the audio it plays with; else as it was, with the ladder's bounds. Resolves
   * with the video rungs' own rates by name (`Variant.peakBitRate`, `averageBitRate`).
   */
  async function measureMaster(
    masterKey: string,
    listed: PublishedSegments[],
    first: ChunkOutput,
    targetDuration: number,
  ): Promise<Map<string, SegmentBitRates>> {
    const byName = new Map<string, SegmentBitRates>();
    const videoRates = new Map<string, SegmentBitRates>();
    for (const { name, segments } of listed) {
      const rates = renditionBitRates(segments, targetDuration);
      if (!rates) continue;
      byName.set(name, rates);
      videoRates.set(`${name}/${RUNG_PLAYLIST}`, rates);
    }
    // A video ladder has one audio rung (planLadder).
    const audio = first.audioBitRates?.[0];
    const master = videoRates.size > 0 ? await deps.storage.readText(masterKey) : null;
    if (master === null) return byName;
    const measured = withVariantBitRates(master, videoRates, audio);
    if (measured !== master) {
      await deps.storage.write(masterKey, Readable.from([Buffer.from(measured)]), {
        limit: MAX_PLAYLIST_BYTES,
        contentType: PLAYLIST_TYPE,
      });
    }
    return byName;
  }

  /**
   * The latest progress heard per job of a split transcode and the last progress published per
   * rung, in this process: the database's copies are written at most every
   * PROGRESS_WRITE_INTERVAL_MS, and a rung's progress must never go back.
   */
  const heard = new Map<string, number>();
  const published = new Map<string, number>();
  /** The encoder figures each run of a split transcode last sent here, and when (`figuresClock`). */
  const figuresHeard = new Map<string, RunFigures>();
  /**
   * A run's key in `heard` and `figuresHeard`, and what the figures written on its job are checked
   * against: its job's attempt, worker and delivery (`Job.workerId` and `Job.runId`, the run that
   * holds it). A retried or taken-over run (a chunk, or the first run)
   * encodes its part again from its start, so what the run before it sent is not its own.
   */
  const runKey = (videoId: string, run: { jobId: string; attempt: number; workerId: string | null; runId: string }) =>
    `${videoId}/${run.jobId}/${run.attempt}/${run.workerId}/${run.runId}`;
  const jobRunKey = (videoId: string, j: Job) =>
    runKey(videoId, { jobId: j.id, attempt: j.attempt, workerId: j.workerId, runId: j.runId });
  /** Keeps `map` to its newest MAX_REMEMBERED entries (a video that failed is never forgotten otherwise). */
  const remember = <T>(map: Map<string, T>, key: string, value: T) => {
    map.delete(key);
    map.set(key, value);
    if (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value!);
  };

  /**
   * A chunk's progress, or the first run's, while the transcode is split: each video rung's progress
   * over the whole source is the sum, over the runs, of the share of the source each run encodes
   * times how far it is (a run's `progress` counts in its own media; the first run's share is what
   * the chunks leave). The audio rungs are the first run's alone, as it reports them. False when
   * the job belongs to no split transcode: its progress is a whole run's.
   */
  async function onSplitProgress(e: EventOf<"job.progress">, videoId: string): Promise<boolean> {
    // One read for every transcode's progress (most are never split): the job and whether it has chunks.
    const job = await db.job.findUnique({
      where: { id: e.jobId },
      include: { _count: { select: { children: { where: { kind: "TRANSCODE_CHUNK" } } } } },
    });
    const parentId = job?.kind === "TRANSCODE_CHUNK" ? job.parentId : job?.kind === "TRANSCODE" ? job.id : null;
    if (!job || !parentId) return false;
    // What a transcode's run reports per rung counts over the whole source: the floor of its
    // video's progress should the run split later (the chunks are queued once it is playable).
    if (job.kind === "TRANSCODE") {
      for (const v of e.variants) {
        const key = `${videoId}/${v.name}`;
        remember(published, key, Math.max(published.get(key) ?? 0, v.progress));
      }
    }
    if (job.kind === "TRANSCODE" && job._count.children === 0) return false;
    const chunkJobs = await db.job.findMany({ where: { parentId, kind: "TRANSCODE_CHUNK" } });
    if (chunkJobs.length === 0) return false;
    const [video, parent, variants] = await Promise.all([
      db.video.findUnique({ where: { id: videoId } }),
      job.id === parentId ? job : db.job.findUnique({ where: { id: parentId } }),
      db.variant.findMany({ where: { videoId } }),
    ]);
    const duration = video?.duration;
    if (!video || !parent || !duration) return true;
    const heardOf = (key: string) => heard.get(key) ?? 0;
    const ownKey = runKey(videoId, { ...e, runId: e.runId ?? "" });
    remember(heard, ownKey, Math.max(heardOf(ownKey), e.progress));
    const progressOf = (j: Job) =>
      j.status === "SUCCEEDED" ? 1 : Math.max(heardOf(jobRunKey(videoId, j)), j.progress);
    let chunksShare = 0;
    let whole = 0;
    for (const chunkJob of chunkJobs) {
      const { chunk } = parseJobInput("TRANSCODE_CHUNK", chunkJob.input);
      const share = (chunk.toSeconds - chunk.fromSeconds) / duration;
      chunksShare += share;
      whole += share * progressOf(chunkJob);
    }
    whole += Math.max(0, 1 - chunksShare) * progressOf(parent);
    const now = await figuresClock();
    const runFigures: RunFigures = {
      fps: e.fps,
      speed: e.speed,
      at: now,
      attempt: e.attempt,
      workerId: e.workerId,
      runId: e.runId ?? "",
    };
    remember(figuresHeard, ownKey, runFigures);
    const figures = splitFigures(videoId, [parent, ...chunkJobs], duration * (1 - whole), now);
    const ownAudio = new Map((job.id === parentId ? e.variants : []).map((v) => [v.name, v.progress] as const));

    const writeNow = deps.progressWrites.due(e.jobId);
    if (writeNow) {
      await db.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: "RUNNING", progress: { lte: e.progress } },
        data: { progress: e.progress, encoderFigures: runFigures },
      });
    }
    const snapshot = videoSnapshot(video);
    for (const row of variants) {
      if (row.status !== "PENDING" && row.status !== "ENCODING") continue;
      const reported = row.kind === "AUDIO" ? ownAudio.get(row.name) : whole;
      if (reported === undefined) continue;
      const key = `${videoId}/${row.name}`;
      const progress = Math.round(Math.min(1, Math.max(reported, row.progress, published.get(key) ?? 0)) * 1000) / 1000;
      remember(published, key, progress);
      deps.pubSub.publish("videoEvents", videoId, {
        kind: "variantProgress",
        video: snapshot,
        variant: variantSnapshot({ ...row, status: "ENCODING", progress }),
        ...figures,
      });
      if (writeNow) {
        await db.variant.updateMany({
          where: { id: row.id, status: { in: ["PENDING", "ENCODING"] }, progress: { lte: progress } },
          data: { status: "ENCODING", progress },
        });
      }
    }
    return true;
  }

  /**
   * The whole transcode's figures from its runs that are encoding: frames and media seconds per
   * second summed over them (they encode side by side), and the ETA of the media left to encode
   * (`remainingSeconds`, the queued chunks' too) at that combined speed. A run's own ETA is of its
   * chunk alone. A run's figures are the newer of those it sent here and those written on its job
   * (every PROGRESS_WRITE_INTERVAL_MS, by whichever API instance took its event), and only those of the
   * job's current run (its attempt, and the worker and delivery that hold it).
   */
  function splitFigures(videoId: string, runs: Job[], remainingSeconds: number, now: number): EncoderFigures {
    let fps: number | null = null;
    let speed: number | null = null;
    for (const run of runs) {
      if (run.status !== "RUNNING") continue;
      const here = figuresHeard.get(jobRunKey(videoId, run));
      const parsed = RunFigures.safeParse(run.encoderFigures).data;
      const ofRun = parsed && runKey(videoId, { ...parsed, jobId: run.id }) === jobRunKey(videoId, run);
      const written = ofRun ? parsed : undefined;
      const heardOf = here && (!written || here.at >= written.at) ? here : written;
      if (!heardOf || now - heardOf.at > FIGURES_FRESH_MS) continue;
      if (heardOf.fps !== null) fps = (fps ?? 0) + heardOf.fps;
      if (heardOf.speed !== null) speed = (speed ?? 0) + heardOf.speed;
    }
    return roundedEncoderFigures({ fps, speed, etaSeconds: speed ? Math.max(0, remainingSeconds) / speed : null });
  }

  /** Forgets the split transcode's progress once its video is whole. */
  function forgetProgress(videoId: string): void {
    for (const map of [heard, published, figuresHeard]) {
      for (const key of [...map.keys()]) if (key.startsWith(`${videoId}/`)) map.delete(key);
    }
  }

  return { onSplit, onProbed, onFirstChunkSucceeded, onChunkSucceeded, onSplitProgress };
}

/** The number in a segment's file name (`seg_00012.ts` → 12), which the contract's pattern guarantees. */
function segmentNumber(uri: string): number {
  return Number(uri.slice(4, uri.indexOf(".")));
}
