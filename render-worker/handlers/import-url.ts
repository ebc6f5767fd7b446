import path from "node:path";
import type { ImportUrlJobMessage } from "../../src/protocol/source-messages.ts";
import { anyAddress, publicAddressesOnly } from "../net/address-policy.ts";
import { downloadUrl, type ResolveHost } from "../net/download.ts";
import { sourceReady, storeSource } from "./rendered-source.ts";
import type { JobContext } from "./types.ts";

/** Tests swap the DNS resolver; production uses the system's. */
export interface ImportUrlOptions {
  resolveHost?: ResolveHost;
}

/**
 * Downloads a video from a public http(s) URL (see `downloadUrl` for what is refused), checks that
 * ffmpeg can read it, and stores it at `outputKey`. Emits started and source.ready.
 */
export async function importUrl(
  job: ImportUrlJobMessage,
  ctx: JobContext,
  options: ImportUrlOptions = {},
): Promise<void> {
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
  // A page or an error document served as 200 is refused by the probe, before it reaches storage.
  const contentType = download.contentType?.startsWith("video/") ? download.contentType : "application/octet-stream";
  const probe = await storeSource(ctx, outFile, job.outputKey, contentType);
  await ctx.emit(sourceReady(job.outputKey, probe, { rendered: 0, cached: 0 }));
}
