import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult, Storyboard } from "../../src/protocol/media-facts.ts";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import type { StoryboardLayout } from "../../src/protocol/storage-layout.ts";
import { log } from "../log.ts";
import { isAbortError } from "../media/errors.ts";
import type { ProbedInput } from "../media/media-input.ts";
import {
  makeStoryboardSheets,
  planStoryboard,
  type StoryboardPlan,
  storyboardSheetsWritten,
  storyboardVtt,
} from "../media/storyboard.ts";
import type { JobContext } from "./types.ts";

const IMMUTABLE = "public, max-age=31536000, immutable";

/** Sheets a ladder's encode makes in its own decode (`EncodeLadderArgs.storyboard`), to publish once it has ended. */
export interface StoryboardInEncode {
  plan: StoryboardPlan;
  outDir: string;
}

/**
 * The storyboard a whole run makes in its ladder's decode, its directory made; null for a source
 * without pictures, or when the directory cannot be made (the run then leaves the storyboard to
 * `publishStoryboard`, which says why it has none).
 */
export async function storyboardInEncode(ctx: JobContext, probe: ProbeResult): Promise<StoryboardInEncode | null> {
  if (probe.width === null || probe.height === null) return null;
  const { duration, width, height } = probe;
  return storyboardDir(ctx, { duration, width, height }).catch(() => null);
}

/** The storyboard's plan for a source with pictures, and its directory in the work dir, made. */
async function storyboardDir(
  ctx: JobContext,
  source: { duration: number; width: number; height: number },
): Promise<StoryboardInEncode> {
  const outDir = path.join(ctx.workDir, "storyboard");
  await mkdir(outDir, { recursive: true });
  return { plan: planStoryboard(source), outDir };
}

/**
 * Makes and uploads the video's storyboard (sheets, then the WebVTT naming them); a failure other than storage's
 * is logged and gives null, since a video without one is still a video. `keyframesOnlyFrom`: at this interval
 * or more only keyframes are decoded (a live recording's rung: many times faster). `madeInEncode`: the ladder
 * encode made the sheets; they are only published.
 */
export async function publishStoryboard(
  job: { jobId: string; layout: StoryboardLayout },
  ctx: JobContext,
  input: ProbedInput,
  probe: ProbeResult,
  options: { keyframesOnlyFrom?: number; madeInEncode?: StoryboardInEncode } = {},
): Promise<Storyboard | null> {
  const { duration, width, height } = probe;
  if (width === null || height === null) return null; // audio only: no pictures
  const { layout } = job;
  try {
    const { plan, outDir } = options.madeInEncode ?? (await storyboardDir(ctx, { duration, width, height }));
    let sheets: string[];
    if (options.madeInEncode) {
      sheets = await storyboardSheetsWritten(plan, outDir, "the ladder's encode");
    } else {
      const keyframesOnly =
        options.keyframesOnlyFrom !== undefined && plan.intervalSeconds >= options.keyframesOnlyFrom;
      sheets = await makeStoryboardSheets({ input, probe, plan, outDir, keyframesOnly, signal: ctx.signal });
    }
    const sheetKeys = sheets.map((_, i) => layout.sheetKey(i));
    for (const [i, file] of sheets.entries()) {
      await ctx.storage.upload(sheetKeys[i]!, file, { contentType: "image/jpeg", cacheControl: IMMUTABLE });
    }
    const vttFile = path.join(outDir, "storyboard.vtt");
    await writeFile(vttFile, storyboardVtt(plan, probe.duration, layout.sheetName));
    await ctx.storage.upload(layout.vttKey, vttFile, { contentType: "text/vtt", cacheControl: "public, max-age=300" });
    const { intervalSeconds, tileWidth, tileHeight, columns, rows, tileCount } = plan;
    return { vttKey: layout.vttKey, sheetKeys, intervalSeconds, tileWidth, tileHeight, columns, rows, tileCount };
  } catch (err) {
    if (isAbortError(err)) throw err;
    // A full or failing storage fails the attempt; the retry makes the storyboard.
    const unavailable = storageUnavailable(err);
    if (unavailable) throw unavailable;
    log.warn("storyboard failed; the video will have none", { jobId: job.jobId, err });
    return null;
  }
}
