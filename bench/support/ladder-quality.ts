// Quality of an encoded ladder for the encode benchmark: each video rung's HLS output against the
// source scaled to the rung's size, scored by ffmpeg's ssim and psnr filters in one process.
import { execFile } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { Rung } from "../../src/protocol/media-facts.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";

const run = promisify(execFile);

export interface RungQuality {
  rung: string;
  /** Bits per second of the rung's MPEG-TS segments over the media time its playlist lists. */
  measuredBitrate: number | null;
  /** SSIM "All" (Y, U and V weighted by their pixel counts), 1 for identical frames. */
  ssim: number | null;
  /** PSNR "average" in dB (over Y, U and V, from the mean squared error of all frames); Infinity when identical. */
  psnr: number | null;
}

/**
 * Scores every video rung written under `workDir` (`{rung}/index.m3u8`) against `source`: the
 * reference is the source scaled straight to the rung's size with bicubic, whatever cascade the
 * encode used, so every encode variant is judged against the same frames. Both sides start at
 * timestamp 0 in one time base, so frames pair by timestamp, and only frames present in both are
 * compared. `seconds` limits both to the first N seconds; null scores the whole clip.
 */
export async function scoreLadder(args: {
  source: string;
  workDir: string;
  rungs: Rung[];
  seconds: number | null;
  signal: AbortSignal;
}): Promise<RungQuality[]> {
  const videoRungs = args.rungs.filter((r) => r.kind === "VIDEO");
  if (videoRungs.length === 0) return [];
  const limit = args.seconds === null ? [] : ["-t", String(args.seconds)];
  const inputs = [
    ...limit,
    "-i",
    args.source,
    ...videoRungs.flatMap((r) => [...limit, "-i", path.join(args.workDir, r.name, RUNG_PLAYLIST)]),
  ];
  // Both sides start at 0 in one time base (AVTB) so that ssim and psnr pair frames by timestamp.
  const aligned = "setsar=1,format=yuv420p,setpts=PTS-STARTPTS,settb=AVTB";
  const graph = [
    `[0:V:0]split=${videoRungs.length}${videoRungs.map((_, i) => `[s${i}]`).join("")}`,
    ...videoRungs.map((r, i) =>
      [
        `[s${i}]scale=${r.width}:${r.height}:flags=bicubic,${aligned},split=2[ra${i}][rb${i}]`,
        `[${i + 1}:V:0]${aligned}[d${i}]`,
        // Named instances (`ssim@q0`) label each summary line with its rung.
        `[d${i}][ra${i}]ssim@q${i}=shortest=1[x${i}]`,
        `[x${i}][rb${i}]psnr@q${i}=shortest=1[o${i}]`,
      ].join(";"),
    ),
  ].join(";");
  const outputs = videoRungs.flatMap((_, i) => ["-map", `[o${i}]`, "-f", "null", "-"]);
  const { stderr } = await run(
    "ffmpeg",
    ["-nostdin", "-hide_banner", "-nostats", "-v", "info", ...inputs, "-filter_complex", graph, ...outputs],
    { signal: args.signal, maxBuffer: 16 * 1024 * 1024 },
  );
  return Promise.all(
    videoRungs.map(async (r, i) => ({
      rung: r.name,
      measuredBitrate: await measuredBitrate(path.join(args.workDir, r.name)),
      ssim: summaryFigure(stderr, `ssim@q${i}`, /\bAll:([\d.]+|inf)/),
      psnr: summaryFigure(stderr, `psnr@q${i}`, /\baverage:([\d.]+|inf)/),
    })),
  );
}

/** The figure `pattern` captures in the summary line the filter instance `name` logs at the end. */
function summaryFigure(stderr: string, name: string, pattern: RegExp): number | null {
  const lines = stderr.split("\n").filter((l) => l.startsWith(`[${name} @ `));
  const value = lines.map((l) => pattern.exec(l)?.[1]).findLast((v) => v !== undefined);
  if (value === undefined) return null;
  return value === "inf" ? Number.POSITIVE_INFINITY : Number(value);
}

async function measuredBitrate(rungDir: string): Promise<number | null> {
  const playlist = await readFile(path.join(rungDir, RUNG_PLAYLIST), "utf8");
  const mediaSeconds = [...playlist.matchAll(/^#EXTINF:([\d.]+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  if (!(mediaSeconds > 0)) return null;
  let bytes = 0;
  for (const file of await readdir(rungDir))
    if (file.endsWith(".ts")) bytes += (await stat(path.join(rungDir, file))).size;
  return (bytes * 8) / mediaSeconds;
}
