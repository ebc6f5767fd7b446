import { execFile } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Modification time of every file under `dir`, by path relative to it. */
export async function mtimes(dir: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, file), (await stat(file)).mtimeMs);
  }
  return files;
}

/** The presentation times of every packet of a media file or playlist (ffprobe), sorted. */
export async function packetTimes(file: string): Promise<number[]> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", file], {
    maxBuffer: 64 << 20,
  });
  return stdout
    .split("\n")
    .map((l) => l.replace(/,$/, "").trim())
    .filter((l) => l !== "" && l !== "N/A")
    .map(Number)
    .sort((a, b) => a - b);
}

/** The longest step between consecutive times. */
export const largestGap = (times: number[]): number => Math.max(...times.slice(1).map((time, i) => time - times[i]!));

/** A published segment as a player fetches it: its bytes, its EXTINF seconds. */
export interface Segment {
  bytes: number;
  seconds: number;
}

/**
 * A media playlist's peak segment bit rate (RFC 8216, 4.3.4.2), bits per second, as the tests read
 * the RFC (independently of the product's `segmentBitRates`); 0 when no run lasts half a target.
 */
export function peakSegmentBitRate(segments: Segment[], targetDuration: number): number {
  let peak = 0;
  for (let first = 0; first < segments.length; first++) {
    let bytes = 0;
    let seconds = 0;
    for (const segment of segments.slice(first)) {
      bytes += segment.bytes;
      seconds += segment.seconds;
      if (seconds > 1.5 * targetDuration) break;
      if (seconds >= 0.5 * targetDuration) peak = Math.max(peak, (bytes * 8) / seconds);
    }
  }
  return peak;
}

/** A rendition's average bit rate: its bytes over its EXTINF seconds. */
export const averageBitRate = (segments: Segment[]) =>
  (segments.reduce((sum, s) => sum + s.bytes, 0) * 8) / segments.reduce((sum, s) => sum + s.seconds, 0);
