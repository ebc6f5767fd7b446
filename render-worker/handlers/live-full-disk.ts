import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Rung } from "../../src/protocol/messages.ts";
import { hlsLayout } from "../../src/protocol/storage-layout.ts";
import { mediaPlaylist } from "../../src/shared/media-playlist.ts";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { log } from "../log.ts";
import type { RungContinuation } from "../media/live-continuation.ts";
import type { WorkerStorage } from "../storage/types.ts";
import type { VariantOutcome } from "./variant-outcomes.ts";

/**
 * How long a broadcast waits for space (storage or the work dir) without publishing a segment
 * before it ends with what it recorded, unless the worker says otherwise
 * (LIVE_FULL_DISK_PATIENCE_SECONDS, at most 30 s): within the 30 s of unpublished media its feed
 * keeps (src/live/feed.ts), so what the publisher sent meanwhile is still encoded when space comes back.
 */
export const FULL_DISK_PATIENCE_MS = 20_000;
/** Between tries of a broadcast's encode while its disk is full. */
export const FULL_DISK_RETRY_MS = 2000;

/** A failure because storage or the work dir is full (not failing, not refusing one file). */
export function isFullDisk(err: unknown): boolean {
  if (storageUnavailable(err)?.full) return true;
  return err instanceof Error && /No space left on device|Disk quota exceeded/i.test(err.message);
}

/**
 * Reads a broadcast's feed and lets its bytes go while its encode waits for space: the API instance
 * holding the feed sees a reader, so it does not queue the job again for another run (which would
 * find the same full disk), and keeps what the encode has not published for its next try. Resolves
 * when the feed ends (the broadcast is over) or `signal` aborts.
 */
export async function holdFeed(feedUrl: string, signal: AbortSignal): Promise<void> {
  try {
    const res = await fetch(feedUrl, { signal });
    if (!res.ok || !res.body) return;
    const reader = res.body.getReader();
    while (!(await reader.read()).done);
  } catch (err) {
    if (!signal.aborted) log.warn("live: the feed held while the disk is full failed", { err: String(err) });
  }
}

/** Waits `ms`, or less when `stop` resolves first. */
export async function pause(ms: number, stop: Promise<void>): Promise<void> {
  const controller = new AbortController();
  await Promise.race([sleep(ms, undefined, { signal: controller.signal }).catch(() => {}), stop]);
  controller.abort();
}

/** Frees the work dir of a try that failed: its rungs' files are encoded again from the feed. */
export async function clearRungDirs(workDir: string, ladder: readonly Rung[]): Promise<void> {
  await Promise.all(ladder.map((r) => rm(path.join(workDir, r.name), { recursive: true, force: true })));
}

/**
 * Ends a broadcast's published playlists as a recording of what they list (`#EXT-X-ENDLIST`), when
 * its disk stayed full: each rung's outcome as the publisher's finish would give it. A playlist
 * storage still cannot take stays as it is, unended (players then treat the recording as a live
 * one that stopped). Null when nothing playable was published (no master): the broadcast fails.
 */
export async function endPublishedPlaylists(
  storage: WorkerStorage,
  outputPrefix: string,
  published: Map<string, RungContinuation>,
  targetDuration: number,
  workDir: string,
): Promise<VariantOutcome[] | null> {
  const hls = hlsLayout(outputPrefix);
  if ((await storage.readText(hls.masterKey)) === null) return null;
  const outcomes: VariantOutcome[] = [];
  for (const [name, { kept }] of published) {
    if (kept.length === 0) continue;
    const file = path.join(workDir, `${name}.ended.m3u8`);
    try {
      await writeFile(file, mediaPlaylist(kept, { targetDuration, endList: true }));
      await storage.upload(hls.playlistKey(name), file, {
        contentType: "application/vnd.apple.mpegurl",
        cacheControl: "public, max-age=3600",
      });
    } catch (err) {
      log.warn("live: a playlist could not be ended on the full disk; it stays open", { rung: name, err: String(err) });
    } finally {
      await rm(file, { force: true });
    }
    outcomes.push({ name, playlistKey: hls.playlistKey(name), segmentCount: kept.length });
  }
  return outcomes;
}
