import path from "node:path";
import type { Rung } from "../../src/protocol/media-facts.ts";
import { hlsLayout } from "../../src/protocol/storage-layout.ts";
import type { WorkerStorage } from "../storage/types.ts";
import { type PlaylistSegment, parsePlaylist } from "../../src/shared/hls-playlists.ts";

/** Where a rung of a broadcast taken over goes on: what its playlist lists, and what this run writes next. */
export interface RungContinuation {
  /** The segments its published playlist lists, which this run's follow. */
  kept: PlaylistSegment[];
  /** The number of this run's first segment: past every segment in storage, listed or not. */
  firstSegment: number;
  /** The media seconds the kept segments last: where this run's timeline starts. */
  keptSeconds: number;
}

/** A live segment's number from its file name (`seg_00012.ts`), or null for another name. */
function segmentNumber(name: string): number | null {
  const digits = name.startsWith("seg_") && name.endsWith(".ts") ? name.slice(4, -3) : "";
  if (digits.length === 0 || digits.length > 9) return null;
  for (const c of digits) if (c < "0" || c > "9") return null;
  return Number(digits);
}

/**
 * What an earlier run of this broadcast published, per rung, when this run takes it over (its
 * worker died, or its run was handed back): null when nothing is published yet (the broadcast's
 * first run). Numbering goes on past every segment storage holds, also one a dead run uploaded and
 * never listed, so no key is written twice.
 */
export async function publishedBroadcast(
  storage: WorkerStorage,
  outputPrefix: string,
  ladder: readonly Rung[],
): Promise<Map<string, RungContinuation> | null> {
  const hls = hlsLayout(outputPrefix);
  const rungs = await Promise.all(
    ladder.map(async (rung) => {
      const text = await storage.readText(hls.playlistKey(rung.name));
      const kept: PlaylistSegment[] = text
        ? parsePlaylist(text).segments.map((s) => ({
            uri: s.uri,
            duration: s.duration,
            ...(s.discontinuity ? { discontinuity: true } : {}),
          }))
        : [];
      const stored = await storage.list(`${hls.rungPrefix(rung.name)}/`);
      const numbers = [...kept.map((s) => s.uri), ...stored.map((o) => path.posix.basename(o.key))]
        .map(segmentNumber)
        .filter((n): n is number => n !== null);
      const continuation: RungContinuation = {
        kept,
        firstSegment: numbers.length > 0 ? Math.max(...numbers) + 1 : 0,
        keptSeconds: kept.reduce((sum, s) => sum + s.duration, 0),
      };
      return [rung.name, continuation] as const;
    }),
  );
  return rungs.some(([, c]) => c.kept.length > 0) ? new Map(rungs) : null;
}
