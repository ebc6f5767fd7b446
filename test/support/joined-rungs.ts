import { execFile } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "vitest";
import type { SegmentFormat } from "../../src/protocol/media-facts.ts";
import { splitFragmentedMp4 } from "../../render-worker/media/fragmented-mp4.ts";

/**
 * A rung as a player reads it from segments that several encodeLadder runs wrote (chunks, or a
 * run's kept segments and a resumed run's): the segments back to back in one file, and where each
 * lies in it, so that its packets and frames can be checked across the joins.
 */

const run = promisify(execFile);

export interface JoinedRung {
  file: string;
  /** Every segment: its EXTINF, where its media lies in `file`, and (fMP4) the init its file carried. */
  segments: { uri: string; duration: number; from: number; to: number; init: Buffer | null }[];
  /** Where in `file` each run after the first starts. */
  joins: number[];
}

/** One run's part of a joined rung: the segments its work dir's list names, or its first `count`. */
export interface RunPart {
  workDir: string;
  count?: number;
}

/**
 * The segments the runs wrote for `rung` (each run's list in order, `count` of them where given),
 * joined into `file`. fMP4: one init (the first segment's) for the whole file, then every segment's
 * fragments, as a player reads a playlist with one EXT-X-MAP.
 */
export async function joinRung(
  file: string,
  runs: (RunPart | string)[],
  rung: string,
  format: SegmentFormat,
): Promise<JoinedRung> {
  const parts: Buffer[] = [];
  const segments: JoinedRung["segments"] = [];
  const joins: number[] = [];
  let offset = 0;
  for (const [i, part] of runs.entries()) {
    const { workDir, count } = typeof part === "string" ? { workDir: part, count: undefined } : part;
    if (i > 0) joins.push(offset);
    const list = await readFile(path.join(workDir, rung, "index.m3u8"), "utf8");
    const listed = [...list.matchAll(/^#EXTINF:([\d.]+),\n(\S+)$/gm)].slice(0, count);
    for (const [, duration, uri] of listed) {
      const bytes = await readFile(path.join(workDir, rung, uri!));
      const split = format === "FMP4" ? splitFragmentedMp4(bytes) : null;
      if (split && offset === 0) {
        parts.push(split.init);
        offset += split.init.length;
      }
      const media = split ? split.media : bytes;
      parts.push(media);
      segments.push({
        uri: uri!,
        duration: Number(duration),
        from: offset,
        to: offset + media.length,
        init: split?.init ?? null,
      });
      offset += media.length;
    }
  }
  await writeFile(file, Buffer.concat(parts));
  return { file, segments, joins };
}

export interface Packet {
  pts: number;
  dts: number;
  pos: number;
  key: boolean;
}

type Packets = { timeBase: number; packets: Packet[]; size: number };
/** packetsOf's readings by file, size and modification time: the tests read each joined file several times. */
const probed = new Map<string, Promise<Packets>>();

/** The packets of a file's only stream, in file order, and its time base. */
export async function packetsOf(file: string): Promise<Packets> {
  const { size, mtimeMs } = await stat(file);
  const key = `${file}\0${size}\0${mtimeMs}`;
  let reading = probed.get(key);
  if (!reading) {
    reading = readPackets(file, size);
    probed.set(key, reading);
    reading.catch(() => probed.delete(key));
  }
  return reading;
}

async function readPackets(file: string, size: number): Promise<Packets> {
  const { stdout } = await run(
    "ffprobe",
    ["-v", "error", "-show_entries", "stream=time_base:packet=pts,dts,pos,flags", "-of", "json", file],
    { maxBuffer: 64 << 20 },
  );
  const data = JSON.parse(stdout) as {
    streams: { time_base: string }[];
    packets: { pts: number; dts?: number; pos?: string; flags: string }[];
  };
  const [num, den] = data.streams[0]!.time_base.split("/").map(Number);
  // The MPEG-TS demuxer gives only the first of the AAC frames a PES carries its position: the rest lie there too.
  let pos = 0;
  const packets = data.packets.map((p) => {
    pos = p.pos === undefined ? pos : Number(p.pos);
    return { pts: p.pts, dts: p.dts ?? p.pts, pos, key: p.flags.startsWith("K") };
  });
  return { timeBase: num! / den!, packets, size };
}

/** Per segment: its first presentation time (in the stream's time base), its packet count, whether it opens on a keyframe. */
export async function segmentStarts(
  joined: JoinedRung,
): Promise<{ start: number; packets: number; keyframe: boolean }[]> {
  const { packets } = await packetsOf(joined.file);
  return joined.segments.map((s) => {
    const inside = packets.filter((p) => p.pos >= s.from && p.pos < s.to);
    return { start: Math.min(...inside.map((p) => p.pts)), packets: inside.length, keyframe: inside[0]?.key ?? false };
  });
}

/** What is wrong with decoded frame indices that should be 0…count-1, each once and in order. */
export function frameProblems(indices: number[], count: number): string[] {
  const problems: string[] = [];
  const seen = new Map<number, number>();
  for (const index of indices) seen.set(index, (seen.get(index) ?? 0) + 1);
  for (let i = 0; i < count; i++) if (!seen.has(i)) problems.push(`frame ${i} lost`);
  for (const [index, times] of seen) {
    if (times > 1) problems.push(`frame ${index} shown ${times} times`);
    if (index >= count) problems.push(`frame ${index} is not the source's`);
  }
  for (const [i, index] of indices.entries())
    if (i > 0 && index < indices[i - 1]!) problems.push(`frame ${index} after frame ${indices[i - 1]}`);
  return problems;
}

/** Every step between consecutive (sorted) times that is not `step`: a gap, an overlap, a repeat. */
export function timelineProblems(times: number[], step: number): string[] {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted.slice(1).flatMap((t, i) => (t - sorted[i]! === step ? [] : [`${sorted[i]} → ${t}`]));
}

/** One frame interval of a 30000/1001 fps source, in seconds. */
export const NTSC_STEP_SECONDS = 1001 / 30_000;

/**
 * Checks that `joined` keeps `reference`'s timeline (a one-process encode's): its pts and dts one
 * frame interval (`stepSeconds`) apart throughout, with no gap, overlap or shift at a join, and equal
 * to the reference's packet for packet.
 */
export async function expectReferenceTimeline(
  reference: JoinedRung,
  joined: JoinedRung,
  stepSeconds: number,
): Promise<void> {
  const [expected, actual] = [await packetsOf(reference.file), await packetsOf(joined.file)];
  const step = Math.round(stepSeconds / actual.timeBase);
  expect(step * actual.timeBase).toBeCloseTo(stepSeconds, 9);
  for (const key of ["pts", "dts"] as const) {
    expect(
      timelineProblems(
        actual.packets.map((p) => p[key]),
        step,
      ),
      key,
    ).toEqual([]);
    expect(
      actual.packets.map((p) => p[key]),
      key,
    ).toEqual(expected.packets.map((p) => p[key]));
  }
}

/**
 * Checks that `joined` lists the segments `reference` does (names and EXTINF durations), each
 * starting at the same time and on a keyframe; returns the starts for further checks.
 */
export async function expectReferenceSegments(
  reference: JoinedRung,
  joined: JoinedRung,
): ReturnType<typeof segmentStarts> {
  expect(joined.segments.map((s) => [s.uri, s.duration])).toEqual(reference.segments.map((s) => [s.uri, s.duration]));
  const starts = await segmentStarts(joined);
  expect(starts).toEqual(await segmentStarts(reference));
  expect(starts.map((s) => s.keyframe)).not.toContain(false);
  return starts;
}
