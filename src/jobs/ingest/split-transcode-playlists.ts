import { z } from "zod";
import type { DbTransaction as Tx } from "../../db/client.ts";
import { log } from "../../log.ts";
import { PublishedSegments, RenditionBitRates } from "../../protocol/media-facts.ts";
import { hlsLayout, RUNG_INIT_SEGMENT, RUNG_PLAYLIST, videoPrefix } from "../../protocol/storage-layout.ts";
import {
  mediaPlaylist,
  bitRatesByName,
  type SegmentBitRates,
  withVariantBitRates,
} from "../../shared/hls-playlists.ts";
import { storePlaylist } from "../../storage/playlists.ts";
import { parseJobInput } from "../create-job.ts";
import { failSplitIn, type Listed, nothingListed, readySplitIn, type SplitContext } from "./split-transcode-end.ts";

/**
 * A split transcode's playlists once its first run ended (docs/chunked-transcoding.md): this module
 * is their one writer from then on, under the video's lock; until then the first run's worker
 * publishes them. Their text is src/shared/hls-playlists.ts's, as the worker's is.
 */

/**
 * What a split transcode's job stores in `Job.output` once its run is done: each video rung's
 * segments, what the first run's audio rungs carry, and how many chunks the first run split the
 * transcode into (absent from older workers).
 */
export const ChunkOutput = z.object({
  targetDuration: z.number().int().positive().optional(),
  variants: z.array(PublishedSegments),
  audioBitRates: z.array(RenditionBitRates).optional(),
  chunkCount: z.number().int().optional(),
});
export type ChunkOutput = z.infer<typeof ChunkOutput>;

/**
 * Lists, in each video rung's playlist, the segments of every chunk that follows the first
 * without a gap, and ends the playlists (the rungs and the video READY) once every chunk is in.
 * The whole list is written again each time, from the jobs' outputs: applying it twice writes
 * the same bytes. A chunk whose segments do not follow the previous one's fails the video. What
 * it decides is dated by the latest end of the runs it lists, whichever event came last.
 */
export async function listChunksIn(ctx: SplitContext, tx: Tx, parentId: string, videoId: string): Promise<Listed> {
  const parent = await tx.job.findUnique({ where: { id: parentId } });
  if (parent?.status !== "SUCCEEDED" || parent.output === null || !parent.finishedAt) return nothingListed();
  const video = await tx.video.findUnique({ where: { id: videoId } });
  if (video?.status !== "QUEUED" && video?.status !== "PROCESSING") return nothingListed();
  const chunkJobs = (await tx.job.findMany({ where: { parentId, kind: "TRANSCODE_CHUNK" } }))
    .map((job) => ({ job, chunk: parseJobInput("TRANSCODE_CHUNK", job.input).chunk }))
    .sort((a, b) => a.chunk.index - b.chunk.index);
  const first = ChunkOutput.parse(parent.output);
  // The run's end arrived before its split: the chunks are queued when the split arrives.
  if (chunkJobs.length === 0 && first.chunkCount !== undefined) return nothingListed();
  if (chunkJobs.length === 0) {
    // A split run's end that does not say how many chunks it made (older workers) with none
    // queued: the first chunk is not the whole video, and nothing will bring the rest.
    const error = "The split transcode's chunks were never queued; the video is incomplete";
    log.error("split transcode ended with no chunk queued; the video fails", { videoId, parentId });
    return failSplitIn(ctx, tx, parent, videoId, error, parent.finishedAt);
  }
  if (first.chunkCount !== undefined && first.chunkCount !== chunkJobs.length + 1) {
    const error =
      `The split transcode's run says it made ${first.chunkCount} chunks, ` +
      `but its split made ${chunkJobs.length + 1}`;
    log.error("split transcode's end and split disagree; the video fails", { videoId, parentId, error });
    return failSplitIn(ctx, tx, parent, videoId, error, parent.finishedAt);
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
    const error =
      `The chunks of the split transcode do not join: the ${name} rung has ${segments[gap]!.uri} ` +
      `where segment ${gap} belongs`;
    log.error("split transcode's chunks do not join; the video fails", { videoId, parentId, error });
    return failSplitIn(ctx, tx, parent, videoId, error, at);
  }
  for (const { name, segments } of listed) {
    const text = mediaPlaylist(segments, { targetDuration, endList: complete, ...map });
    await storePlaylist(ctx.deps.storage, hls.playlistKey(name), text);
    segmentCounts.set(name, segments.length);
  }
  if (!complete) return nothingListed();
  const measured = await measureMaster(ctx, hls.masterKey, listed, first, targetDuration);
  const ladder = parseJobInput("TRANSCODE_CHUNK", chunkJobs[0]!.job.input).ladder;
  return readySplitIn(ctx, tx, { parentId, videoId, ladder, segmentCounts, measured, posterKey: video.posterKey, at });
}

/**
 * Once every chunk is listed: the master the first run published, with each variant's measured
 * rates (`withVariantBitRates`) where every segment of its video rung came with its bytes and the
 * first run measured the audio it plays with; else as it was, with the ladder's bounds. Resolves
 * with the video rungs' own rates by name (`Variant.peakBitRate`, `averageBitRate`).
 */
async function measureMaster(
  { deps }: SplitContext,
  masterKey: string,
  listed: PublishedSegments[],
  first: ChunkOutput,
  targetDuration: number,
): Promise<Map<string, SegmentBitRates>> {
  const byName = bitRatesByName(listed, targetDuration);
  const videoRates = new Map([...byName].map(([name, rates]) => [`${name}/${RUNG_PLAYLIST}`, rates]));
  // A video ladder has one audio rung (planLadder).
  const audio = first.audioBitRates?.[0];
  const master = videoRates.size > 0 ? await deps.storage.readText(masterKey) : null;
  if (master === null) return byName;
  const measured = withVariantBitRates(master, videoRates, audio);
  if (measured !== master) await storePlaylist(deps.storage, masterKey, measured);
  return byName;
}

/** The number in a segment's file name (`seg_00012.ts` → 12), which the contract's pattern guarantees. */
function segmentNumber(uri: string): number {
  return Number(uri.slice(4, uri.indexOf(".")));
}
