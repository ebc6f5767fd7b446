import type { Variant, Video } from "../../generated/prisma/client.ts";
import { encoderFigures } from "../../events/video-events.ts";
import { variantAfterProgress } from "../progress.ts";
import { type EventOf, type IngestDeps, publishProgress } from "./ingest-deps.ts";

type Progress = EventOf<"job.progress">;

/** What a batch's progress leaves to write: the final state of each job and rung it moved. */
interface ProgressWrites {
  jobs: Map<string, { attempt: number; progress: number }>;
  variants: Map<string, Variant>;
}

/**
 * A batch's `job.progress` of whole (unsplit) transcodes, applied together with a constant number of
 * statements, however many jobs it holds: one read of their jobs, one of their videos and rungs, then
 * one transaction that writes every throttled job and rung (docs/performance.md, "The control plane").
 * Before, each event read its job twice and its video and rungs, and wrote each rung and its job in
 * a commit of its own. Each event is judged as `admit` and `onProgress` judge it one by one: only the
 * job's current attempt, nothing older than its last state event, progress only grows (in memory
 * across the batch, and in the writes' conditions against what other instances wrote meanwhile).
 * Everything else (an unknown, canceled, superseded, split or live job) is left to the per-event
 * path, which knows what to do about it.
 */
export function createProgressBatch(
  deps: IngestDeps,
  /** Told of each progress event of a whole transcode applied here (split-transcode-progress.ts keeps its floor). */
  onTranscodeProgress: (e: Progress, videoId: string) => void,
) {
  const { db } = deps;

  /**
   * Reads what `groups` (each one job's progress events, in order) need, and returns the groups it
   * leaves to the per-event path and `apply`, which publishes and writes the rest.
   */
  async function take(groups: Progress[][]): Promise<{ left: Progress[][]; apply: () => Promise<void> }> {
    if (!groups.length) return { left: [], apply: async () => {} };
    const ids = groups.map((g) => g[0]!.jobId);
    const [jobs, videos] = await Promise.all([
      db.job.findMany({
        where: { id: { in: ids } },
        select: {
          id: true,
          videoId: true,
          attempt: true,
          status: true,
          lastSeq: true,
          kind: true,
          _count: { select: { children: { where: { kind: "TRANSCODE_CHUNK" } } } },
        },
      }),
      db.video.findMany({ where: { jobs: { some: { id: { in: ids } } } }, include: { variants: true } }),
    ]);
    const jobById = new Map(jobs.map((j) => [j.id, j]));
    const videoById = new Map(videos.map((v) => [v.id, v]));
    const left: Progress[][] = [];
    const mine: { group: Progress[]; job: (typeof jobs)[number]; video: (typeof videos)[number] }[] = [];
    for (const group of groups) {
      const job = jobById.get(group[0]!.jobId);
      const video = job && videoById.get(job.videoId);
      const applies =
        job?.kind === "TRANSCODE" &&
        job._count.children === 0 &&
        (job.status === "QUEUED" || job.status === "RUNNING" || job.status === "SUCCEEDED") &&
        group.every((e) => e.attempt === job.attempt);
      if (applies && video) mine.push({ group, job, video });
      else if (!applies) left.push(group);
      // A job whose video is gone: its progress has nothing to move (`onProgress` ignores it too).
    }
    return { left, apply: () => apply(mine) };
  }

  async function apply(
    mine: { group: Progress[]; job: { id: string; lastSeq: number }; video: Video & { variants: Variant[] } }[],
  ): Promise<void> {
    const writes: ProgressWrites = { jobs: new Map(), variants: new Map() };
    // A video's rungs as the batch's events leave them: two jobs of one video (a rung retried alone
    // beside the ladder) move the same rows.
    const rungsByVideo = new Map<string, Map<string, Variant>>();
    for (const { group, job, video } of mine) {
      let rungs = rungsByVideo.get(video.id);
      if (!rungs) {
        rungs = new Map(video.variants.map((v) => [v.name, v]));
        rungsByVideo.set(video.id, rungs);
      }
      const moved = new Map<string, Variant>();
      let progress: number | null = null;
      for (const e of group) {
        // Progress older than an applied state event says nothing new (`admit`).
        if (e.seq < job.lastSeq) continue;
        onTranscodeProgress(e, video.id);
        const now: Variant[] = [];
        for (const reported of e.variants) {
          const row = rungs.get(reported.name);
          const live = row && variantAfterProgress(row, reported);
          if (!live) continue;
          rungs.set(live.name, live);
          moved.set(live.id, live);
          now.push(live);
        }
        publishProgress(deps.pubSub, video, now, encoderFigures(e));
        progress = Math.max(progress ?? 0, e.progress);
      }
      if (progress === null || !deps.progressWrites.due(job.id)) continue;
      writes.jobs.set(job.id, { attempt: group[0]!.attempt, progress });
      for (const [id, live] of moved) writes.variants.set(id, live);
    }
    await write(writes);
  }

  /**
   * One statement: the jobs, then the rungs (the order every other writer takes them in, after
   * the video: `lockVideo`), each table's rows locked in id order first so that two API instances
   * writing overlapping batches wait for each other rather than deadlock. The rungs' locks refer to
   * the jobs' so that Postgres takes those first, whichever part of the statement runs first. The
   * conditions are `onProgress`'s: a job's progress only while its attempt runs, a rung's only while
   * it encodes, and never lower than what is there. One round trip, where a transaction of two
   * statements took four.
   */
  async function write({ jobs, variants }: ProgressWrites): Promise<void> {
    if (!jobs.size && !variants.size) return;
    const jobIds = [...jobs.keys()].sort();
    const attempts = jobIds.map((id) => jobs.get(id)!.attempt);
    const jobProgress = jobIds.map((id) => jobs.get(id)!.progress);
    const variantIds = [...variants.keys()].sort();
    const rungProgress = variantIds.map((id) => variants.get(id)!.progress);
    const segments = variantIds.map((id) => variants.get(id)!.segmentCount);
    await db.$executeRaw`
      WITH job_locks AS MATERIALIZED (
        SELECT id FROM "Job" WHERE id = ANY(${jobIds}::uuid[]) ORDER BY id FOR NO KEY UPDATE
      ), variant_locks AS MATERIALIZED (
        SELECT id FROM "Variant"
        WHERE id = ANY(${variantIds}::uuid[]) AND (SELECT count(*) FROM job_locks) >= 0
        ORDER BY id FOR NO KEY UPDATE
      ), job_writes AS (
        UPDATE "Job" AS j SET progress = x.progress, "updatedAt" = now()
        FROM job_locks, unnest(${jobIds}::uuid[], ${attempts}::int[], ${jobProgress}::float8[]) AS x(id, attempt, progress)
        WHERE j.id = job_locks.id AND j.id = x.id AND j.attempt = x.attempt AND j.status = 'RUNNING'
          AND j.progress <= x.progress
      )
      UPDATE "Variant" AS v
      SET status = 'ENCODING', progress = x.progress, "segmentCount" = GREATEST(v."segmentCount", x.segments),
        "updatedAt" = now()
      FROM variant_locks, unnest(${variantIds}::uuid[], ${rungProgress}::float8[], ${segments}::int[]) AS x(id, progress, segments)
      WHERE v.id = variant_locks.id AND v.id = x.id AND v.status IN ('PENDING', 'ENCODING') AND v.progress <= x.progress`;
  }

  return { take };
}
