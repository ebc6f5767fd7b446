import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { MediaError } from "./errors.ts";
import { runFfmpeg } from "./ffmpeg-process.ts";
import { decodeLimitOptions, inputSeekOptions, mediaInputOptions, type ProbedInput } from "./media-input.ts";
import { vttTime } from "../../src/shared/webvtt.ts";

/** Frames a storyboard holds at most: the interval grows with the duration to stay under it. */
export const MAX_STORYBOARD_TILES = 200;
/** Intervals a storyboard may sample at, in seconds: round numbers, so cues fall on them. */
const INTERVALS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600];
/** A tile fits in this square (the long side of the frame gets it). */
const TILE_BOX = 160;
/** Tiles per sheet row and sheet column, at most. */
const MAX_GRID = 10;

/** How a storyboard samples and lays out a video (see `Storyboard` in the contract). */
export interface StoryboardPlan {
  intervalSeconds: number;
  tileCount: number;
  tileWidth: number;
  tileHeight: number;
  columns: number;
  rows: number;
  sheetCount: number;
}

const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);

/** The smallest round interval that keeps the tiles under MAX_STORYBOARD_TILES, and the grid they fill. */
export function planStoryboard(probe: { duration: number; width: number; height: number }): StoryboardPlan {
  const duration = Math.max(probe.duration, 0.001);
  const intervalSeconds =
    INTERVALS.find((i) => Math.ceil(duration / i) <= MAX_STORYBOARD_TILES) ??
    Math.ceil(duration / MAX_STORYBOARD_TILES);
  const tileCount = Math.max(1, Math.ceil(duration / intervalSeconds));
  const landscape = probe.width >= probe.height;
  const tileWidth = landscape ? TILE_BOX : even((TILE_BOX * probe.width) / probe.height);
  const tileHeight = landscape ? even((TILE_BOX * probe.height) / probe.width) : TILE_BOX;
  const columns = Math.min(MAX_GRID, tileCount);
  const rows = Math.min(MAX_GRID, Math.ceil(tileCount / columns));
  const sheetCount = Math.ceil(tileCount / (columns * rows));
  return { intervalSeconds, tileCount, tileWidth, tileHeight, columns, rows, sheetCount };
}

export interface MakeStoryboardArgs {
  input: ProbedInput;
  probe: ProbeResult;
  plan: StoryboardPlan;
  /** An empty directory: ffmpeg runs there and writes `sheet-0.jpg`, `sheet-1.jpg`… */
  outDir: string;
  /**
   * Decode only the keyframes (`-skip_frame nokey`): for a source with a keyframe at least every
   * `plan.intervalSeconds`, each tile is the keyframe at or before its time.
   */
  keyframesOnly?: boolean;
  signal?: AbortSignal;
}

/**
 * The filter chain from decoded frames to sheets: `fps` samples the frame at every interval,
 * `tpad` + `trim` make exactly `tileCount` of them (the last frame repeats if the source ends
 * early), `tile` lays them out, one output frame per sheet.
 */
export function storyboardFilter(plan: StoryboardPlan): string {
  return [
    // `up`: a tile shows the frame at its time (or the last one before), not the one half an interval later.
    `fps=1/${plan.intervalSeconds}:round=up`,
    `scale=${plan.tileWidth}:${plan.tileHeight}:flags=bicubic`,
    "setsar=1",
    `tpad=stop=${plan.tileCount}:stop_mode=clone`,
    `trim=end_frame=${plan.tileCount}`,
    `tile=${plan.columns}x${plan.rows}`,
  ].join(",");
}

/** The ffmpeg output that writes `storyboardFilter`'s frames as `sheet-0.jpg`, `sheet-1.jpg`… in `outDir`. */
export function storyboardSheetsOutput(outDir: string, map: string): { target: string; options: string[] } {
  return {
    target: path.join(outDir, "sheet-%d.jpg"),
    options: ["-map", map, "-q:v", "4", "-start_number", "0", "-f", "image2"],
  };
}

/**
 * The sheet files a run wrote in `outDir`, in order; fails when one is missing or empty
 * (`commandLine`: the run's, for the error).
 */
export async function storyboardSheetsWritten(
  plan: StoryboardPlan,
  outDir: string,
  commandLine: string,
): Promise<string[]> {
  const files = Array.from({ length: plan.sheetCount }, (_, i) => path.join(outDir, `sheet-${i}.jpg`));
  for (const file of files) {
    const written = await stat(file).catch(() => null);
    if (!written || written.size === 0) {
      const found = (await readdir(outDir).catch(() => [])).join(", ") || "nothing";
      const message = `ffmpeg wrote no ${path.basename(file)} of ${plan.sheetCount} storyboard sheets (found ${found})`;
      throw new MediaError(message, { retryable: false, command: commandLine });
    }
  }
  return files;
}

/**
 * Writes the storyboard's sprite sheets in an ffmpeg run of their own, decoding the source again;
 * a whole transcode run makes them in its ladder's decode instead (`EncodeLadderArgs.storyboard`).
 * Returns the sheet files in order.
 */
export async function makeStoryboardSheets(args: MakeStoryboardArgs): Promise<string[]> {
  const { plan, outDir } = args;
  const sheets = storyboardSheetsOutput(outDir, "0:V:0");
  const commandLine = await runFfmpeg({
    inputs: [
      {
        source: args.input.url,
        options: [
          ...mediaInputOptions(args.input),
          ...decodeLimitOptions(),
          // A clip's (a trimmed input's) tiles count from its start and end with it.
          ...inputSeekOptions(args.input, 0),
          ...(args.keyframesOnly ? ["-skip_frame", "nokey"] : []),
        ],
      },
    ],
    outputs: [
      { target: sheets.target, options: ["-an", "-sn", "-dn", "-vf", storyboardFilter(plan), ...sheets.options] },
    ],
    cwd: outDir,
    signal: args.signal,
  });
  return storyboardSheetsWritten(plan, outDir, commandLine);
}

/**
 * The WebVTT file of a storyboard: one cue per tile, from its sample time to the next one (the
 * last ends at `duration`), whose text is `{sheet}#xywh=x,y,w,h` with the sheet named relative
 * to the VTT file.
 */
export function storyboardVtt(plan: StoryboardPlan, duration: number, sheetName: (index: number) => string): string {
  const perSheet = plan.columns * plan.rows;
  const cues: string[] = [];
  for (let i = 0; i < plan.tileCount; i++) {
    const start = i * plan.intervalSeconds;
    const end = i === plan.tileCount - 1 ? Math.max(duration, start + 0.001) : (i + 1) * plan.intervalSeconds;
    const slot = i % perSheet;
    const x = (slot % plan.columns) * plan.tileWidth;
    const y = Math.floor(slot / plan.columns) * plan.tileHeight;
    const xywh = `${x},${y},${plan.tileWidth},${plan.tileHeight}`;
    cues.push(`${vttTime(start)} --> ${vttTime(end)}\n${sheetName(Math.floor(i / perSheet))}#xywh=${xywh}`);
  }
  return `WEBVTT\n\n${cues.join("\n\n")}\n`;
}
