import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { probeSource } from "../media/probe.ts";
import type { JobContext } from "./types.ts";

/**
 * Probes a source a job made (a render, a download) with the probe's limits, then stores it at
 * `outputKey` for the transcode that follows; what ffmpeg cannot read never reaches storage.
 */
export async function storeSource(
  ctx: JobContext,
  file: string,
  outputKey: string,
  contentType = "video/mp4",
): Promise<ProbeResult> {
  const { probe } = await probeSource(file, { signal: ctx.signal });
  await ctx.storage.upload(outputKey, file, { contentType, cacheControl: "private, max-age=0" });
  return probe;
}

/** The last event of a render or import job: its source is stored (the API then queues the transcode). */
export function sourceReady(
  outputKey: string,
  probe: ProbeResult,
  counts: { rendered: number; cached: number },
): JobEventBody {
  return {
    type: "source.ready",
    outputKey,
    duration: probe.duration,
    width: probe.width,
    height: probe.height,
    fps: probe.fps,
    renderedCount: counts.rendered,
    cachedCount: counts.cached,
  };
}
