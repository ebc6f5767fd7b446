import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { log } from "../log.ts";
import type { FeedPacket, FeedSink } from "./feed.ts";
import { FLV_HEADER, flvReader, flvTag } from "./flv.ts";
import { feedPacketOf } from "./publisher.ts";

/**
 * What a broadcast's feed holds for a joining reader (the media its encode has not published),
 * kept on this API instance's disk as well as in its memory, so that the instance restarted after
 * a crash (SIGKILL, an OOM kill: the same LIVE_SPOOL_DIR) hands a run taking the broadcast over the
 * media that died with the process (docs/live.md, "A crash of the API holding a broadcast").
 *
 * One directory per broadcast (its video id), FLV files each from a keyframe, named by its media
 * time (ms, on the encode's media time, as every tag in them): the codec headers, then the media.
 * A file goes once the encode has published past the next one's start; the oldest go beyond
 * MAX_SPOOL_BYTES. A write that fails (a full disk) deletes the broadcast's spool: a spool on disk
 * is whole from its first file to the crash, or absent.
 */

/** A new file starts at the first keyframe this long (ms of media) after the current file's start. */
const FILE_MS = 4000;
/** The most a broadcast's spool holds on disk (the feed keeps 32 MiB in memory): the oldest files go beyond. */
const MAX_SPOOL_BYTES = 64 * 1024 * 1024;
/** A tag read back larger than this is refused (the ingest's own largest message). */
const MAX_TAG_BYTES = 8 * 1024 * 1024;
/**
 * A spool not written for this long belongs to no broadcast that can come back: beyond the longest
 * reconnect window (120 s) and a restart. Swept at start and every SWEEP_EVERY_MS.
 */
const STALE_MS = 30 * 60_000;
const SWEEP_EVERY_MS = 10 * 60_000;

const HEADER_KINDS: FeedPacket["kind"][] = ["metadata", "video header", "audio header"];

/** A broadcast's spool read back: its latest codec headers, and its media from a keyframe (dts: media time, ms). */
export interface SpooledFeed {
  headers: FeedPacket[];
  media: FeedPacket[];
}

/** The spools of this instance's broadcasts under `dir`; `dir` null: none kept. */
export function createFeedSpools(dir: string | null) {
  let sweeper: NodeJS.Timeout | null = null;
  // A video id is a UUID the API made; anything else never names a path.
  const isVideoId = (videoId: string) => /^[0-9a-f-]{36}$/.test(videoId);
  const broadcastDir = (videoId: string) => {
    if (!isVideoId(videoId)) throw new Error(`not a video id: ${videoId}`);
    return path.join(dir!, videoId);
  };
  const sweep = async () => {
    if (!dir) return;
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const at = path.join(dir, name);
      const newest = await newestWrite(at);
      if (Date.now() - newest > STALE_MS) await rm(at, { recursive: true, force: true }).catch(() => {});
    }
  };
  return {
    /**
     * A spool for `videoId`'s feed (what it held before is deleted: a restored feed writes it again),
     * or null when none is kept.
     */
    async open(videoId: string): Promise<FeedSpool | null> {
      if (!dir) return null;
      const at = broadcastDir(videoId);
      try {
        await rm(at, { recursive: true, force: true });
        await mkdir(at, { recursive: true });
      } catch (err) {
        log.warn("live: a broadcast's spool could not be made: a crash of this instance loses what it holds", {
          videoId,
          err: (err as Error).message,
        });
        return null;
      }
      return new FeedSpool(videoId, at);
    },
    /** What `videoId`'s spool holds (a crashed instance's), or null: none, or no keyframe in it. */
    async read(videoId: string): Promise<SpooledFeed | null> {
      if (!dir) return null;
      return readSpool(broadcastDir(videoId)).catch((err) => {
        log.warn("live: a broadcast's spool could not be read", { videoId, err: (err as Error).message });
        return null;
      });
    },
    /** Deletes `videoId`'s spool: its encode is over. */
    remove(videoId: string): void {
      if (!dir || !isVideoId(videoId)) return;
      void rm(broadcastDir(videoId), { recursive: true, force: true }).catch(() => {});
    },
    /** Sweeps spools no broadcast can come back to now and every SWEEP_EVERY_MS, until `stop`. */
    startSweeping(): void {
      if (!dir || sweeper) return;
      void sweep();
      sweeper = setInterval(() => void sweep(), SWEEP_EVERY_MS);
      sweeper.unref();
    },
    stop(): void {
      if (sweeper) clearInterval(sweeper);
      sweeper = null;
    },
  };
}

export type FeedSpools = ReturnType<typeof createFeedSpools>;

async function newestWrite(at: string): Promise<number> {
  const files = await readdir(at).catch(() => [] as string[]);
  let newest = (await stat(at).catch(() => null))?.mtimeMs ?? 0;
  for (const file of files)
    newest = Math.max(newest, (await stat(path.join(at, file)).catch(() => null))?.mtimeMs ?? 0);
  return newest;
}

const startOf = (file: string) => Number.parseInt(path.basename(file, ".flv"), 10);

async function readSpool(at: string): Promise<SpooledFeed | null> {
  const files = (await readdir(at).catch(() => [] as string[]))
    .filter((f) => /^\d+\.flv$/.test(f))
    .sort((a, b) => startOf(a) - startOf(b));
  const headers = new Map<FeedPacket["kind"], FeedPacket>();
  const media: FeedPacket[] = [];
  for (const file of files) {
    const read = flvReader(
      MAX_TAG_BYTES,
      (raw) => {
        const packet = feedPacketOf(raw);
        if (!packet) return;
        if (HEADER_KINDS.includes(packet.kind)) headers.set(packet.kind, packet);
        // Media from the first keyframe, in order (a file's media follow the one before's).
        else if (media.length > 0 || packet.kind === "keyframe") media.push(packet);
      },
      (error) => `not FLV (${error})`,
    );
    // A file cut short by the crash ends with part of a tag: the parser waits for the rest.
    const refused = read(await readFile(path.join(at, file)));
    if (refused) throw new Error(`${file}: ${refused}`);
  }
  if (media.length === 0) return null;
  return { headers: [...headers.values()], media };
}

/** One broadcast's spool: the files of its directory, the newest being written. */
class FeedSpool implements FeedSink {
  readonly #videoId: string;
  readonly #dir: string;
  readonly #headers = new Map<FeedPacket["kind"], FeedPacket>();
  /**
   * Its files, oldest first: each one's media start, bytes, its stream and when that stream closed
   * (a file is deleted only then: its stream would make it again); the last is the one written.
   */
  #files: { startMs: number; file: string; bytes: number; out: WriteStream; closed: Promise<void> }[] = [];
  #failed = false;

  constructor(videoId: string, dir: string) {
    this.#videoId = videoId;
    this.#dir = dir;
  }

  keep(packet: FeedPacket, mediaMs: number): void {
    if (this.#failed) return;
    if (HEADER_KINDS.includes(packet.kind)) this.#headers.set(packet.kind, packet);
    const current = this.#files.at(-1);
    if (packet.kind === "keyframe" && (!current || mediaMs - current.startMs >= FILE_MS)) {
      this.#startFile(mediaMs);
    } else if (!current) return; // Before the first keyframe: its headers are written with it.
    this.#write(flvTag(packet.type, mediaMs, packet.data));
  }

  published(mediaMs: number): void {
    // A file goes once what comes after its successor's start is enough to start from.
    while (this.#files.length > 1 && this.#files[1]!.startMs <= mediaMs + 1) this.#dropOldest();
  }

  clear(): void {
    while (this.#files.length > 0) this.#dropOldest();
  }

  close(): void {
    this.#files.at(-1)?.out.end();
  }

  #startFile(startMs: number): void {
    this.#files.at(-1)?.out.end();
    const file = path.join(this.#dir, `${startMs}.flv`);
    const out = createWriteStream(file);
    out.on("error", (err) => this.#fail(err));
    const closed = new Promise<void>((resolve) => out.once("close", resolve));
    this.#files.push({ startMs, file, bytes: 0, out, closed });
    this.#write(FLV_HEADER);
    for (const header of this.#headers.values()) this.#write(flvTag(header.type, startMs, header.data));
    let total = this.#files.reduce((sum, f) => sum + f.bytes, 0);
    while (this.#files.length > 1 && total > MAX_SPOOL_BYTES) {
      total -= this.#files[0]!.bytes;
      this.#dropOldest();
    }
  }

  #write(bytes: Buffer): void {
    const current = this.#files.at(-1)!;
    current.bytes += bytes.length;
    current.out.write(bytes);
  }

  #dropOldest(): void {
    const oldest = this.#files.shift()!;
    oldest.out.end();
    void oldest.closed.then(() => rm(oldest.file, { force: true })).catch(() => {});
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    log.warn("live: a broadcast's spool failed and is deleted: a crash of this instance loses what it holds", {
      videoId: this.#videoId,
      err: err.message,
    });
    for (const f of this.#files) f.out.destroy();
    this.#files = [];
    void rm(this.#dir, { recursive: true, force: true }).catch(() => {});
  }
}
