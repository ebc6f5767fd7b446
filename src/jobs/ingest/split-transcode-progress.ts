import { z } from "zod";
import { createDbClock } from "../../db/clock.ts";
import type { EncoderFigures } from "../../events/video-events.ts";
import type { Job, Variant } from "../../generated/prisma/client.ts";
import { roundedEncoderFigures } from "../../shared/encoder-figures.ts";
import { parseJobInput } from "../create-job.ts";
import { type EventOf, type IngestDeps, publishProgress } from "./ingest-deps.ts";

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
 * A split transcode's one progress (docs/chunked-transcoding.md): its runs' progress and figures
 * added up into the whole transcode's, published per rung and written on each run's job.
 */
export function createSplitProgress(deps: IngestDeps) {
  const { db } = deps;
  /** The time of the runs' figures: Postgres's, which every API instance reads alike. */
  const figuresClock = createDbClock(db, deps.clock);

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
   * What a transcode's run reports per rung counts over the whole source: the floor of its video's
   * progress should the run split later (the chunks are queued once it is playable).
   */
  function noteWholeRunProgress(e: EventOf<"job.progress">, videoId: string): void {
    for (const v of e.variants) {
      const key = `${videoId}/${v.name}`;
      remember(published, key, Math.max(published.get(key) ?? 0, v.progress));
    }
  }

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
    if (job.kind === "TRANSCODE") noteWholeRunProgress(e, videoId);
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
    const moved: Variant[] = [];
    for (const row of variants) {
      if (row.status !== "PENDING" && row.status !== "ENCODING") continue;
      const reported = row.kind === "AUDIO" ? ownAudio.get(row.name) : whole;
      if (reported === undefined) continue;
      const key = `${videoId}/${row.name}`;
      const progress = Math.round(Math.min(1, Math.max(reported, row.progress, published.get(key) ?? 0)) * 1000) / 1000;
      remember(published, key, progress);
      moved.push({ ...row, status: "ENCODING", progress });
    }
    publishProgress(deps.pubSub, video, moved, figures);
    if (writeNow) {
      for (const { id, progress } of moved) {
        await db.variant.updateMany({
          where: { id, status: { in: ["PENDING", "ENCODING"] }, progress: { lte: progress } },
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

  return { onSplitProgress, noteWholeRunProgress, forgetProgress };
}
