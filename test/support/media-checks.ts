import { execFile } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "vitest";
import { parsePlaylist } from "../../src/shared/hls-playlists.ts";

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

/** A playlist's or segment's bytes as a player gets them: over HTTP, or from a `file:` URL. */
async function bytesAt(url: URL): Promise<Buffer> {
  if (url.protocol === "file:") return readFile(url);
  const res = await fetch(url);
  expect(res.status, url.href).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

/** A rendition's peak and average, as the tests read RFC 8216, from its playlist and segments. */
async function renditionRates(playlistUrl: URL): Promise<{ peak: number; average: number }> {
  const playlist = parsePlaylist((await bytesAt(playlistUrl)).toString("utf8"));
  expect(playlist.endList, playlistUrl.href).toBe(true);
  const segments: Segment[] = [];
  for (const s of playlist.segments) {
    segments.push({ bytes: (await bytesAt(new URL(s.uri, playlistUrl))).byteLength, seconds: s.duration });
  }
  return {
    peak: Math.ceil(peakSegmentBitRate(segments, playlist.targetDuration!)),
    average: Math.ceil(averageBitRate(segments)),
  };
}

/**
 * A finished video's master states what each variant's segments carry: its BANDWIDTH the peak of its
 * video rendition plus its audio's, its AVERAGE-BANDWIDTH their averages, against the test's own
 * reading of RFC 8216 from the playlists and segments (an fMP4 segment without its init) as a player
 * fetches them from `masterUrl` (the API's, or a `file:` URL of the published files).
 */
export async function expectMeasuredMaster(masterUrl: URL): Promise<void> {
  const master = parsePlaylist((await bytesAt(masterUrl)).toString("utf8"));
  const audioUri = Object.values(master.mediaGroups?.AUDIO ?? {})
    .flatMap((group) => Object.values(group))
    .map((rendition) => rendition.uri)
    .find((uri) => uri !== undefined);
  const audio = audioUri ? await renditionRates(new URL(audioUri, masterUrl)) : { peak: 0, average: 0 };
  expect(master.playlists?.length, masterUrl.href).toBeGreaterThan(0);
  // Each figure is rounded up on its own: the sum of two may be 1 off the test's.
  const near = (a: number, b: number) => Math.abs(a - b) <= 2;
  for (const variant of master.playlists!) {
    const measured = await renditionRates(new URL(variant.uri, masterUrl));
    const peak = variant.attributes.BANDWIDTH!;
    // m3u8-parser keeps AVERAGE-BANDWIDTH, which it does not know, as the text it read.
    const average = Number((variant.attributes as Record<string, unknown>)["AVERAGE-BANDWIDTH"]);
    expect(near(peak, measured.peak + audio.peak), `${variant.uri}: BANDWIDTH ${peak}`).toBe(true);
    expect(near(average, measured.average + audio.average), `${variant.uri}: AVERAGE-BANDWIDTH ${average}`).toBe(true);
  }
}

/**
 * Each variant's `peakBitRate` and `averageBitRate` (GraphQL) are what its own segments carry, as
 * the test reads RFC 8216 from its playlist at `playlistUrl` (resolved against `base`, the API's URL).
 */
export async function expectMeasuredVariants(
  base: string,
  variants: { name: string; playlistUrl: string | null; peakBitRate: number | null; averageBitRate: number | null }[],
): Promise<void> {
  expect(variants.length).toBeGreaterThan(0);
  for (const v of variants) {
    const measured = await renditionRates(new URL(v.playlistUrl!, base));
    expect(v.peakBitRate, `${v.name}: peakBitRate`).not.toBeNull();
    expect(v.averageBitRate, `${v.name}: averageBitRate`).not.toBeNull();
    expect(Math.abs(v.peakBitRate! - measured.peak), `${v.name}: peakBitRate ${v.peakBitRate}`).toBeLessThanOrEqual(1);
    expect(
      Math.abs(v.averageBitRate! - measured.average),
      `${v.name}: averageBitRate ${v.averageBitRate}`,
    ).toBeLessThanOrEqual(1);
  }
}
