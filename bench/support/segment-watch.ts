// Watches published HLS segments in a local storage directory and notices any that are written
// again: segments are served `immutable`, so a player or CDN that fetched the first bytes keeps them.
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";

interface SeenSegment {
  hash: string;
  /** Identity of the file as last hashed: a rename over it changes the inode, a write the mtime. */
  version: string;
  firstSeenAt: number;
}

interface SegmentRewrite {
  key: string;
  at: number;
  sameBytes: boolean;
}

/** Segment files `videos/{id}/hls/{rung}/*.ts` under `dataDir`, as storage keys. */
async function listSegments(dataDir: string): Promise<string[]> {
  const videos = path.join(dataDir, "videos");
  const entries = await readdir(videos, { recursive: true }).catch(() => [] as string[]);
  return entries
    .map((e) => `videos/${e.split(path.sep).join("/")}`)
    .filter((k) => /^videos\/[^/]+\/hls\/[^/]+\/[^/]+\.ts$/.test(k));
}

/**
 * Polls `dataDir` every `intervalMs`, hashes each segment when first seen and again whenever its
 * file changes, and records every change: with different bytes (a rewrite a player can see), or
 * the same bytes written again.
 */
export function watchSegments(dataDir: string, intervalMs = 300) {
  const seen = new Map<string, SeenSegment>();
  const rewrites: SegmentRewrite[] = [];
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<void> = Promise.resolve();

  async function check(key: string): Promise<void> {
    const file = path.join(dataDir, ...key.split("/"));
    let version: string;
    let bytes: Buffer;
    try {
      const s = await stat(file);
      version = `${s.ino}:${s.mtimeMs}:${s.size}`;
      if (seen.get(key)?.version === version) return;
      bytes = await readFile(file);
      // A file still being written (a writer that does not rename into place) changes between the
      // stat and the read: hashed now, its finished bytes would count as a rewrite. Next pass.
      const after = await stat(file);
      if (`${after.ino}:${after.mtimeMs}:${after.size}` !== version) return;
    } catch {
      return; // deleted meanwhile (a canceled or deleted video's cleanup)
    }
    const hash = createHash("sha256").update(bytes).digest("hex");
    const before = seen.get(key);
    if (!before) {
      seen.set(key, { hash, version, firstSeenAt: Date.now() });
      return;
    }
    rewrites.push({ key, at: Date.now(), sameBytes: before.hash === hash });
    // Compared with the first bytes seen, which are the ones a client may have cached.
    seen.set(key, { ...before, version });
  }

  async function scan(): Promise<void> {
    for (const key of await listSegments(dataDir)) await check(key);
  }

  return {
    start() {
      const tick = () => {
        pass = scan().finally(() => (timer = setTimeout(tick, intervalMs)));
      };
      tick();
    },
    /** Stops polling after a last full pass. */
    async stop(): Promise<void> {
      clearTimeout(timer);
      await pass;
      clearTimeout(timer);
      await scan();
    },
    segmentCount: () => seen.size,
    rewrites: () => [...rewrites],
    /** When each segment of `videoId` was first seen. */
    firstSeen: (videoId: string) =>
      [...seen].filter(([k]) => k.startsWith(`videos/${videoId}/`)).map(([, s]) => s.firstSeenAt),
  };
}
