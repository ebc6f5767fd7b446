import { randomBytes } from "node:crypto";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Rung } from "../../src/protocol/media-facts.ts";
import { hlsLayout, liveDiskReserveKey } from "../../src/protocol/storage-layout.ts";
import { mediaPlaylist, PLAYLIST_TYPE } from "../../src/shared/hls-playlists.ts";
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

/** An ended playlist's bytes per segment, at most: its `#EXTINF` line, its URI and a discontinuity's tag. */
const PLAYLIST_BYTES_PER_SEGMENT = 64;
/** The reserve's room beyond the playlists: their headers, the file system's directory blocks. */
const RESERVE_SLACK_BYTES = 64 * 1024;

/**
 * The room a broadcast keeps in storage to end its playlists (`endPublishedPlaylists`) on a disk that
 * stays full: each ended playlist is written whole beside the one it replaces (a copy in the work
 * dir, which may share the disk, then storage's temporary copy), one after another, so twice the
 * longest playlist the broadcast can list (its longest length in segments).
 */
export function diskReserveBytes(options: { maxDurationSeconds: number; segmentSeconds: number }): number {
  const segments = Math.ceil(options.maxDurationSeconds / options.segmentSeconds) + 1;
  return 2 * segments * PLAYLIST_BYTES_PER_SEGMENT + RESERVE_SLACK_BYTES;
}

/** Where a run keeps the room for its ended playlists in its work dir (`keepPlaylistRoom`). */
const PLAYLIST_ROOM_DIR = "ended-playlists";
/** A playlist's lines before its segments' (and its `#EXT-X-ENDLIST`), at most. */
const PLAYLIST_HEADER_BYTES = 4096;

/**
 * Keeps room in the run's work dir for each rung's ended playlist (`endPublishedPlaylists`): a file
 * per rung, as large as the longest playlist the broadcast can list, of random bytes (no file
 * system keeps it in less room). The ended playlist is written over it in place, so a work dir on
 * a disk of its own that stays full (whose other writers take any room let go) still ends the
 * playlists; on a file system that copies on write (btrfs, ZFS) an overwrite may need room of its
 * own. A rung whose file could not be written (the work dir already full) goes without, with a
 * warning. Let go with the run's work dir.
 */
export async function keepPlaylistRoom(
  workDir: string,
  ladder: readonly Rung[],
  options: { maxDurationSeconds: number; segmentSeconds: number },
): Promise<void> {
  const segments = Math.ceil(options.maxDurationSeconds / options.segmentSeconds) + 1;
  const bytes = segments * PLAYLIST_BYTES_PER_SEGMENT + PLAYLIST_HEADER_BYTES;
  try {
    await mkdir(path.join(workDir, PLAYLIST_ROOM_DIR), { recursive: true });
    for (const rung of ladder) await writeFile(playlistRoom(workDir, rung.name), randomBytes(bytes));
  } catch (err) {
    log.warn("live: the room for the broadcast's ended playlists could not be kept in the work dir", {
      bytes,
      err: String(err),
    });
  }
}

const playlistRoom = (workDir: string, rung: string) => path.join(workDir, PLAYLIST_ROOM_DIR, `${rung}.m3u8`);

/**
 * Writes `text` into `file`: over the bytes it holds when it is a rung's kept room (no new room
 * needed while the text is no longer), else a new file.
 */
async function writeInKeptRoom(file: string, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  const handle = await open(file, "r+").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  if (!handle) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, bytes);
    return;
  }
  try {
    await handle.write(bytes, 0, bytes.length, 0);
    await handle.truncate(bytes.length);
  } finally {
    await handle.close();
  }
}

/**
 * Stores the broadcast's reserve (`liveDiskReserveKey`) of `bytes`, unless an earlier run of the
 * broadcast left one as large. Random bytes, so no file system keeps it in less room (compression,
 * shared zero pages). False, with a warning, when storage does not take it: the broadcast goes on
 * without (and its playlists stay open if its disk fills for good).
 */
export async function keepDiskReserve(
  storage: WorkerStorage,
  videoId: string,
  bytes: number,
  workDir: string,
): Promise<boolean> {
  const key = liveDiskReserveKey(videoId);
  const file = path.join(workDir, "disk-reserve");
  try {
    const kept = await storage.list(key.slice(0, key.lastIndexOf("/") + 1));
    if (kept.some((o) => o.key === key && o.bytes >= bytes)) return true;
    await writeFile(file, randomBytes(bytes));
    await storage.upload(key, file, { contentType: "application/octet-stream", cacheControl: "private, max-age=0" });
    return true;
  } catch (err) {
    log.warn("live: the broadcast's disk reserve could not be stored", { videoId, bytes, err: String(err) });
    return false;
  } finally {
    await rm(file, { force: true });
  }
}

/**
 * Lets the reserve's room go: the worker's storage has no delete, so an empty object replaces it
 * (the API deletes it with the video). Needs no room itself: an empty file. A failure is a warning.
 */
export async function releaseDiskReserve(storage: WorkerStorage, videoId: string, workDir: string): Promise<void> {
  const file = path.join(workDir, "disk-reserve.released");
  try {
    await writeFile(file, "");
    await storage.upload(liveDiskReserveKey(videoId), file, {
      contentType: "application/octet-stream",
      cacheControl: "private, max-age=0",
    });
  } catch (err) {
    log.warn("live: the broadcast's disk reserve could not be let go", { videoId, err: String(err) });
  } finally {
    await rm(file, { force: true });
  }
}

/** Frees the work dir of a try that failed: its rungs' files are encoded again from the feed. */
export async function clearRungDirs(workDir: string, ladder: readonly Rung[]): Promise<void> {
  await Promise.all(ladder.map((r) => rm(path.join(workDir, r.name), { recursive: true, force: true })));
}

/**
 * Ends a broadcast's published playlists as a recording of what they list (`#EXT-X-ENDLIST`), when
 * its disk stayed full (its reserve let go first): each rung's outcome as the publisher's finish
 * would give it. Each is written in the work dir in the room the run kept for it
 * (`keepPlaylistRoom`), then stored. A playlist that cannot be written or stored still (no room
 * kept, or others took storage's first) stays as it is, unended (players then treat the recording
 * as a live one that stopped). Null when nothing playable was published (no master): the broadcast
 * fails.
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
    const file = playlistRoom(workDir, name);
    try {
      await writeInKeptRoom(file, mediaPlaylist(kept, { targetDuration, endList: true }));
      await storage.upload(hls.playlistKey(name), file, {
        contentType: PLAYLIST_TYPE,
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
