import { estimateSplitRun, recordActualCostIn } from "../../costs/job-cost.ts";
import { log } from "../../log.ts";
import { createJob, parseJobInput } from "../create-job.ts";
import { estimateChunk } from "../kinds/transcode-chunk.ts";
import { lockVideo } from "../video-lock.ts";
import type { EventOf } from "./ingest-deps.ts";
import type { Listed, SplitContext } from "./split-transcode-end.ts";
import { listChunksIn } from "./split-transcode-playlists.ts";

/**
 * A split transcode's chunk jobs created (docs/chunked-transcoding.md): one `TRANSCODE_CHUNK` job
 * per chunk after the first, and their estimates once the source's probe is known.
 */

/**
 * Queues the chunks after the first, once per transcode (a later attempt that splits again finds
 * them queued). The split run's end may have come first: the split is still its attempt's, and
 * the video is judged once the chunks are queued; `afterListing` follows what that decided.
 */
export async function onSplit(
  ctx: SplitContext,
  afterListing: (parentId: string, videoId: string, listed: Listed) => Promise<void>,
  e: EventOf<"job.split">,
  videoId: string,
): Promise<void> {
  const { deps } = ctx;
  const { db } = deps;
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
    return { listed: await listChunksIn(ctx, tx, parent.id, videoId) };
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
export async function onProbed({ deps }: SplitContext, e: EventOf<"job.probed">, videoId: string): Promise<void> {
  await deps.db.$transaction(async (tx) => {
    await lockVideo(tx, videoId);
    const chunkJobs = (await tx.job.findMany({ where: { parentId: e.jobId, kind: "TRANSCODE_CHUNK" } })).map((job) => ({
      job,
      input: parseJobInput("TRANSCODE_CHUNK", job.input),
    }));
    if (chunkJobs.length === 0) return;
    // The first chunk ends where the second starts.
    const toSeconds = Math.min(...chunkJobs.map(({ input }) => input.chunk.fromSeconds));
    await estimateSplitRun(tx, deps.costs, e.jobId, { fromSeconds: 0, toSeconds });
    for (const { job, input } of chunkJobs) {
      await tx.job.update({ where: { id: job.id }, data: await estimateChunk(tx, deps.costs, job, input) });
    }
  });
}
