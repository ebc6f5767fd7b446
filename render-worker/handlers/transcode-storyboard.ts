import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult, Storyboard, TranscodeJobMessage } from "../../src/protocol/messages.ts";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { storyboardLayout } from "../../src/protocol/storage-layout.ts";
import { log } from "../log.ts";
import { isAbortError } from "../media/errors.ts";
import type { ProbedInput } from "../media/media-input.ts";
import { makeStoryboardSheets, planStoryboard, storyboardVtt } from "../media/storyboard.ts";
import type { JobContext } from "./types.ts";

const IMMUTABLE = "public, max-age=31536000, immutable";

/**
 * Makes and uploads the video's storyboard (sheets first, then the WebVTT file that names them).
 * A video without a storyboard is still a video: a failure other than storage's is logged and
 * gives null. `keyframesOnlyFrom`: when the plan's interval is at least this many seconds, only
 * the keyframes are decoded (a source whose keyframes are that close, such as a live recording's
 * rung: each tile is then the keyframe at or before its time, many times faster to make).
 */
export async function publishStoryboard(
  job: Pick<TranscodeJobMessage, "jobId" | "outputPrefix">,
  ctx: JobContext,
  input: ProbedInput,
  probe: ProbeResult,
  options: { keyframesOnlyFrom?: number } = {},
): Promise<Storyboard | null> {
  const { duration, width, height } = probe;
  if (width === null || height === null) return null; // audio only: no pictures
  const layout = storyboardLayout(job.outputPrefix);
  const outDir = path.join(ctx.workDir, "storyboard");
  try {
    const plan = planStoryboard({ duration, width, height });
    await mkdir(outDir, { recursive: true });
    const keyframesOnly = options.keyframesOnlyFrom !== undefined && plan.intervalSeconds >= options.keyframesOnlyFrom;
    const sheets = await makeStoryboardSheets({ input, probe, plan, outDir, keyframesOnly, signal: ctx.signal });
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
