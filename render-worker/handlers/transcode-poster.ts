import path from "node:path";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { log } from "../log.ts";
import { isAbortError } from "../media/errors.ts";
import type { ProbedInput } from "../media/media-input.ts";
import { extractPoster, planPoster, type PosterPlan, posterWritten } from "../media/poster.ts";
import type { JobContext } from "./types.ts";

/** The poster a run from the source's start makes in its ladder's decode (`EncodeLadderArgs.poster`). */
export function posterInEncode(ctx: JobContext, probe: ProbeResult): { plan: PosterPlan; outFile: string } {
  return { plan: planPoster(probe), outFile: path.join(ctx.workDir, "poster.jpg") };
}

/** How often a poster made in the encode is looked for until it is there. */
const POSTER_POLL_MS = 50;

/**
 * Waits for the poster the run's encode writes (whole: `posterOutput`): "written" once it is
 * there, else how the encode ended without it. Its frame is in the source's first second, so it is
 * there before the first segments are published, or soon after.
 */
async function posterFromEncode(
  outFile: string,
  encodeSucceeded: Promise<boolean>,
): Promise<"written" | "missing" | "encode failed"> {
  let ended: boolean | null = null;
  void encodeSucceeded.then((ok) => (ended = ok));
  for (;;) {
    const endedBefore = ended;
    if (await posterWritten(outFile)) return "written";
    if (endedBefore !== null) return endedBefore ? "missing" : "encode failed";
    await new Promise((r) => setTimeout(r, POSTER_POLL_MS));
  }
}

/**
 * Uploads the video's poster: the one the encode made (`made`), else one made in a run of its own;
 * a video without a poster is still a video.
 */
export async function publishPoster(
  job: { jobId: string; key: string },
  ctx: JobContext,
  input: ProbedInput,
  probe: ProbeResult,
  made?: { outFile: string; encodeSucceeded: Promise<boolean> },
): Promise<string | null> {
  const { key } = job;
  const outFile = made?.outFile ?? path.join(ctx.workDir, "poster.jpg");
  try {
    const fromEncode = made ? await posterFromEncode(made.outFile, made.encodeSucceeded) : "missing";
    // An encode that failed fails the attempt: no run of its own for a poster nobody will see.
    if (fromEncode === "encode failed") return null;
    if (fromEncode === "missing") {
      if (made) log.warn("the encode wrote no poster; making it apart", { jobId: job.jobId });
      await extractPoster({ input, probe, outFile, signal: ctx.signal });
    }
    await ctx.storage.upload(key, outFile, { contentType: "image/jpeg", cacheControl: "public, max-age=3600" });
    return key;
  } catch (err) {
    if (isAbortError(err)) throw err;
    // A full or failing storage fails the attempt; the retry makes the poster.
    const unavailable = storageUnavailable(err);
    if (unavailable) throw unavailable;
    log.warn("poster failed; the video will have none", { jobId: job.jobId, err });
    return null;
  }
}
