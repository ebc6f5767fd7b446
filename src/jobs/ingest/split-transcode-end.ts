import type { DbTransaction as Tx } from "../../db/client.ts";
import { recordActualCost } from "../../costs/job-cost.ts";
import type { Job, Variant } from "../../generated/prisma/client.ts";
import type { Rung } from "../../protocol/media-facts.ts";
import { hlsLayout, videoPrefix } from "../../protocol/storage-layout.ts";
import type { SegmentBitRates } from "../../shared/hls-playlists.ts";
import { videoWebhookData, webhookEventId } from "../../webhooks/events.ts";
import { cancelSplitFamily } from "../cancel.ts";
import { type IngestDeps, publishVideoStatus } from "./ingest-deps.ts";
import { failVideoIn } from "./job-runs.ts";
import type { createTranscodeEventIngestor } from "./transcode-events.ts";
import type { ReadyRung } from "./transcode-outcomes.ts";

/**
 * The end of a split transcode (docs/chunked-transcoding.md): once every chunk is listed, its video
 * rungs and the video READY as after a whole run; or, when its chunks cannot make it whole, the
 * video FAILED and the transcode's other runs canceled. Decided in the listing's transaction
 * (split-transcode-playlists.ts); what follows its commit is `afterListing`.
 */

/** What the split transcode's parts share: the ingestor's deps and the whole transcode's ingestor. */
export interface SplitContext {
  deps: IngestDeps;
  transcode: ReturnType<typeof createTranscodeEventIngestor>;
}

/** What a listing decided, for `afterListing` once its transaction commits. */
export interface Listed {
  complete: boolean;
  readyVariants: Variant[];
  renditionsQueued: boolean;
  parentId?: string;
  /** The transcode's runs the listing canceled (it failed the video): their workers are told once it commits. */
  canceled?: Job[];
}

/** A listing that decided nothing yet: a chunk is still missing, or the transcode is not this one's to judge. */
export const nothingListed = (): Listed => ({ complete: false, readyVariants: [], renditionsQueued: false });

/**
 * Fails a split video its chunks cannot make whole, in `tx`: the video and its unfinished rungs,
 * its `video.failed` webhook, and the transcode's other runs canceled.
 */
export async function failSplitIn(
  { deps }: SplitContext,
  tx: Tx,
  parent: Job,
  videoId: string,
  error: string,
  at: Date,
): Promise<Listed> {
  await failVideoIn(tx, videoId, error, at);
  const canceled = await cancelSplitFamily(tx, parent, error, at);
  const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
  if (video.status === "FAILED") {
    const eventId = webhookEventId("video.failed", videoId, video.finishedAt!.toISOString());
    await deps.webhooks.emit(tx, videoId, "video.failed", eventId, { video: videoWebhookData(video) });
  }
  return { complete: false, readyVariants: [], renditionsQueued: false, canceled };
}

/** What the listing leaves for the end: every video rung's playlist ended, and the master measured. */
export interface ListedRungs {
  parentId: string;
  videoId: string;
  /** The video rungs as planned (the chunks' ladder). */
  ladder: Rung[];
  /** How many segments each rung's ended playlist lists, by name. */
  segmentCounts: ReadonlyMap<string, number>;
  /** Each video rung's own rates, where its every segment's bytes were reported. */
  measured: ReadonlyMap<string, SegmentBitRates>;
  posterKey: string | null;
  /** The latest end of the runs listed. */
  at: Date;
}

/** Makes the listed video rungs and the video READY, in `tx`, as a whole run's end does. */
export async function readySplitIn({ transcode }: SplitContext, tx: Tx, listed: ListedRungs): Promise<Listed> {
  const { videoId, at } = listed;
  const hls = hlsLayout(videoPrefix(videoId));
  const rungs: ReadyRung[] = [];
  for (const rung of listed.ladder) {
    const segmentCount = listed.segmentCounts.get(rung.name);
    if (segmentCount === undefined) continue;
    const playlistKey = hls.playlistKey(rung.name);
    const bitRates = listed.measured.get(rung.name);
    rungs.push({ name: rung.name, rung, playlistKey, segmentCount, at, ...(bitRates ? { bitRates } : {}) });
  }
  const readyVariants = await transcode.readyVariantsIn(tx, videoId, rungs);
  const made = { masterKey: hls.masterKey, posterKey: listed.posterKey, storyboard: null };
  const renditionsQueued = await transcode.finishVideoIn(tx, listed.parentId, videoId, made, at, "ready");
  return { complete: true, readyVariants, renditionsQueued };
}

/**
 * Once the listing's transaction commits: its webhooks, the canceled runs' workers told, the rungs
 * made READY published, the video's state; once complete, the transcode's progress forgotten
 * (`forgetProgress`) and its actual cost recorded.
 */
export async function afterListing(
  { deps, transcode }: SplitContext,
  forgetProgress: (videoId: string) => void,
  parentId: string,
  videoId: string,
  listed: Listed,
): Promise<void> {
  deps.webhooks.flush();
  for (const job of listed.canceled ?? []) await deps.onCanceledJobReported(job.id, job.attempt);
  await transcode.publishVariants(videoId, listed.readyVariants);
  if (listed.renditionsQueued) deps.onJobRequeued(new Date());
  if (listed.complete) {
    deps.progressWrites.forget(parentId);
    forgetProgress(videoId);
    // The transcode's own run ended before its rungs were READY and measured.
    await recordActualCost(deps.db, deps.costs, parentId);
  }
  await publishVideoStatus(deps, videoId);
}
