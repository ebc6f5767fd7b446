import type { Db } from "../db/client.ts";
import { hlsLayout, RUNG_PLAYLIST, videoPrefix } from "../protocol/storage-layout.ts";
import {
  parsePlaylist,
  publishedRenditionBitRates,
  type SegmentBitRates,
  withVariantBitRates,
} from "../shared/hls-playlists.ts";
import { storePlaylist } from "../storage/playlists.ts";
import type { ApiStorage } from "../storage/types.ts";

/** How many segments' sizes are asked of storage at once. */
const SIZE_CONCURRENCY = 16;

/** What measuring one video did. */
export interface MeasuredVideo {
  videoId: string;
  /** Variants measured now. */
  measured: string[];
  /** Variants that could not be (a playlist not ended or missing, a segment missing from storage). */
  unmeasured: string[];
  /** Whether its master now states the measured figures (it was written again). */
  masterUpdated: boolean;
}

/**
 * Measures READY variants made before workers reported their figures, from what storage holds (as the worker
 * does), then states them in the video's master; a variant whose segments cannot all be sized keeps its bound.
 * One video at a time in id order, `limit` at most; `dryRun` writes nothing; `onVideo` hears each outcome.
 */
export async function measureVariants(
  db: Db,
  storage: ApiStorage,
  options: { limit?: number; dryRun?: boolean; onVideo?: (video: MeasuredVideo) => void } = {},
): Promise<MeasuredVideo[]> {
  const done: MeasuredVideo[] = [];
  let after: string | undefined;
  while (options.limit === undefined || done.length < options.limit) {
    const videos = await db.video.findMany({
      where: {
        status: "READY",
        masterKey: { not: null },
        variants: { some: { status: "READY", averageBitRate: null } },
        ...(after ? { id: { gt: after } } : {}),
      },
      select: { id: true, masterKey: true, variants: { where: { status: "READY" } } },
      orderBy: { id: "asc" },
      take: Math.min(100, (options.limit ?? Number.POSITIVE_INFINITY) - done.length),
    });
    if (videos.length === 0) break;
    for (const video of videos) {
      const outcome = await measureVideo(db, storage, video, options.dryRun ?? false);
      done.push(outcome);
      options.onVideo?.(outcome);
    }
    after = videos.at(-1)!.id;
  }
  return done;
}

type VideoToMeasure = {
  id: string;
  masterKey: string | null;
  variants: { name: string; kind: "VIDEO" | "AUDIO"; peakBitRate: number | null; averageBitRate: number | null }[];
};

async function measureVideo(db: Db, storage: ApiStorage, video: VideoToMeasure, dryRun: boolean) {
  const hls = hlsLayout(videoPrefix(video.id));
  const rates = new Map<string, SegmentBitRates>();
  const outcome: MeasuredVideo = { videoId: video.id, measured: [], unmeasured: [], masterUpdated: false };
  for (const variant of video.variants) {
    if (variant.peakBitRate !== null && variant.averageBitRate !== null) {
      rates.set(variant.name, { peak: variant.peakBitRate, average: variant.averageBitRate });
      continue;
    }
    const measured = await storedBitRates(storage, hls.playlistKey(variant.name));
    if (!measured) {
      outcome.unmeasured.push(variant.name);
      continue;
    }
    rates.set(variant.name, measured);
    outcome.measured.push(variant.name);
    if (!dryRun) {
      await db.variant.updateMany({
        where: { videoId: video.id, name: variant.name, status: "READY", averageBitRate: null },
        data: { peakBitRate: measured.peak, averageBitRate: measured.average },
      });
    }
  }
  const master = video.masterKey ? await storage.readText(video.masterKey) : null;
  if (master === null) return outcome;
  // The master lists each video rung (or, audio only, each audio rung) by its playlist, and plays
  // a video ladder's one audio rung with every variant (planLadder).
  const hasVideo = video.variants.some((v) => v.kind === "VIDEO");
  const listed = new Map(
    video.variants
      .filter((v) => !hasVideo || v.kind === "VIDEO")
      .flatMap((v) => (rates.has(v.name) ? [[`${v.name}/${RUNG_PLAYLIST}`, rates.get(v.name)!] as const] : [])),
  );
  const audio = hasVideo ? video.variants.find((v) => v.kind === "AUDIO") : undefined;
  const stated = withVariantBitRates(master, listed, audio ? rates.get(audio.name) : undefined);
  if (stated !== master) {
    outcome.masterUpdated = true;
    if (!dryRun) {
      await storePlaylist(storage, video.masterKey!, stated);
    }
  }
  return outcome;
}

/** A rung's rates from its ended playlist and its segments' sizes in storage; null when not all are there. */
async function storedBitRates(storage: ApiStorage, playlistKey: string): Promise<SegmentBitRates | null> {
  const text = await storage.readText(playlistKey);
  if (text === null) return null;
  const playlist = parsePlaylist(text);
  if (!playlist.endList) return null;
  const prefix = playlistKey.slice(0, playlistKey.lastIndexOf("/") + 1);
  const sizes = new Map<string, number>();
  const uris = playlist.segments.map((s) => s.uri);
  for (let i = 0; i < uris.length; i += SIZE_CONCURRENCY) {
    await Promise.all(
      uris.slice(i, i + SIZE_CONCURRENCY).map(async (uri) => {
        // A stored playlist names its segments relative to itself (hls-publisher.ts).
        if (uri.includes("/") || uri.includes("?")) return;
        const bytes = await storage.size(prefix + uri);
        if (bytes !== null) sizes.set(uri, bytes);
      }),
    );
  }
  return publishedRenditionBitRates(playlist, (uri) => sizes.get(uri), 1) ?? null;
}
