/**
 * Measures what the READY videos made before workers reported it carry (operators, once after an
 * upgrade): `npm run measure:variants [-- --dry-run] [--limit <n>]`. Uses DATABASE_URL and the
 * storage the API is configured with (STORAGE); without DATABASE_URL, the embedded Postgres under
 * DATA_DIR. docs/operations.md, "Measured bit rates".
 */
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const usage = `usage: npm run measure:variants [-- --dry-run] [--limit <n>]
Measures the READY variants of READY videos that have no measured bit rates (videos made before
workers reported them): each rung's segments as storage holds them (Variant.peakBitRate,
averageBitRate), then states them in the video's master playlist (BANDWIDTH, AVERAGE-BANDWIDTH).
Prints a line per video and a summary. Safe to run again: measured variants are skipped.
  --dry-run    measure and print, write nothing
  --limit <n>  measure at most n videos
Uses DATABASE_URL (or the embedded Postgres under DATA_DIR) and the storage STORAGE configures.`;
const { values } = parseCommandLine(usage, {
  options: { "dry-run": { type: "boolean" }, limit: { type: "string" } },
});
const limit = values.limit === undefined ? undefined : Number(values.limit);
if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
  usageError(usage, "--limit is a positive whole number");

// The database's and storage's modules are imported once the command line is read.
const { loadEnv } = await import("../src/config.ts");
const { openCommandDatabase } = await import("../src/db/command-database.ts");
const { setLogLevel } = await import("../src/log.ts");
const { createApiStorage } = await import("../src/storage/api-storage.ts");
const { loadSigningSecret, UrlSigner } = await import("../src/storage/url-signer.ts");
const { measureVariants } = await import("../src/videos/measure-variants.ts");

const env = loadEnv();
setLogLevel("warn");
const signer = new UrlSigner(await loadSigningSecret(env.SIGNING_SECRET, env.DATA_DIR));
const storage = await createApiStorage(env, { publicUrl: env.PUBLIC_URL?.replace(/\/$/, "") ?? "", signer });
const { db, close } = await openCommandDatabase(env);
const dryRun = values["dry-run"] === true;
try {
  const videos = await measureVariants(db, storage, {
    limit,
    dryRun,
    onVideo: (v) => {
      const parts = [
        `measured ${v.measured.join(", ") || "none"}`,
        ...(v.unmeasured.length > 0 ? [`could not measure ${v.unmeasured.join(", ")}`] : []),
        v.masterUpdated ? "master updated" : "master unchanged",
      ];
      process.stdout.write(`${v.videoId}: ${parts.join("; ")}\n`);
    },
  });
  const variants = videos.reduce((n, v) => n + v.measured.length, 0);
  const masters = videos.filter((v) => v.masterUpdated).length;
  const failed = videos.reduce((n, v) => n + v.unmeasured.length, 0);
  process.stdout.write(
    `${dryRun ? "dry run: would have measured" : "measured"} ${variants} variants of ${videos.length} videos; ` +
      `${masters} masters ${dryRun ? "to update" : "updated"}; ${failed} variants could not be measured\n`,
  );
} finally {
  await close();
}
