import path from "node:path";
import type { ImportUrlJobMessage } from "../../src/protocol/messages.ts";
import { probeSource } from "../media/probe.ts";
import { anyAddress, publicAddressesOnly } from "../net/address-policy.ts";
import { downloadUrl, type ResolveHost } from "../net/download.ts";
import type { JobContext } from "./types.ts";

/** Tests swap the DNS resolver; production uses the system's. */
export interface ImportUrlOptions {
  resolveHost?: ResolveHost;
}

/**
 * Downloads a video from a public http(s) URL (see `downloadUrl` for what is refused), checks that
 * ffmpeg can read it, and stores it at `outputKey`. Emits started and render.succeeded.
 */
export async function importUrl(job: ImportUrlJobMessage, ctx: JobContext, options: ImportUrlOptions = {}): Promise<void> {
  const { signal } = ctx;
  await ctx.emit({ type: "job.started" });
  const outFile = path.join(ctx.workDir, "import");
  const download = await downloadUrl({
    url: job.url,
    outFile,
    maxBytes: job.maxBytes,
    policy: job.allowPrivateAddresses ? anyAddress : publicAddressesOnly,
    signal,
    resolveHost: options.resolveHost,
  });
  // A page or an error document served as 200 is refused here, before it reaches storage.
  const probe = await probeSource(outFile, { signal });
  const contentType = download.contentType?.startsWith("video/") ? download.contentType : "application/octet-stream";
  await ctx.storage.upload(job.outputKey, outFile, { contentType, cacheControl: "private, max-age=0" });
  await ctx.emit({
    type: "render.succeeded",
    outputKey: job.outputKey,
    duration: probe.duration,
    width: probe.width,
    height: probe.height,
    fps: probe.fps,
    animationsRendered: 0,
    animationsCached: 0,
  });
}
