import { Prisma } from "../../generated/prisma/client.ts";
import { lockVideo } from "../video-lock.ts";
import type { EventOf, IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { onProbed, onSplit } from "./split-transcode-chunks.ts";
import { afterListing, type Listed, type SplitContext } from "./split-transcode-end.ts";
import { type ChunkOutput, listChunksIn } from "./split-transcode-playlists.ts";
import { createSplitProgress } from "./split-transcode-progress.ts";

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
 * then the API's split-transcode-playlists.ts). Once every chunk is listed the playlists end and the
 * video is READY.
 *
 * Its events may arrive in any order (docs/failure-model.md): each records its fact, and the video's
 * state is judged from all of them (`listChunksIn`) whenever one arrives. The first run's end
 * carries its chunk count, so an end that comes before its `job.split` waits for it rather than
 * fail the video; the split then queues the chunks.
 *
 * One file per phase: the chunk jobs created (split-transcode-chunks.ts), the runs' ends (here), the
 * playlists listed as chunks end (split-transcode-playlists.ts), the progress
 * (split-transcode-progress.ts), the end (split-transcode-end.ts).
 */
export function createSplitTranscodeIngestor(
  deps: IngestDeps,
  runs: JobRunIngestor,
  transcode: SplitContext["transcode"],
) {
  const { db } = deps;
  const ctx: SplitContext = { deps, transcode };
  const progress = createSplitProgress(deps);
  const after = (parentId: string, videoId: string, listed: Listed) =>
    afterListing(ctx, progress.forgetProgress, parentId, videoId, listed);

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
      return listChunksIn(ctx, tx, e.jobId, videoId);
    });
    if (!done) return;
    await after(e.jobId, videoId, done);
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
      return { ...(await listChunksIn(ctx, tx, job.parentId, videoId)), parentId: job.parentId };
    });
    if (!done) return;
    deps.progressWrites.forget(e.jobId);
    await after(done.parentId ?? e.jobId, videoId, done);
  }

  return {
    onSplit: (e: EventOf<"job.split">, videoId: string) => onSplit(ctx, after, e, videoId),
    onProbed: (e: EventOf<"job.probed">, videoId: string) => onProbed(ctx, e, videoId),
    onFirstChunkSucceeded,
    onChunkSucceeded,
    onSplitProgress: progress.onSplitProgress,
    noteWholeRunProgress: progress.noteWholeRunProgress,
  };
}
