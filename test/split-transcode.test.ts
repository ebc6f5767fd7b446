import { afterAll, beforeAll, describe, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { SPLIT_ENV, uploadSplitAndCheck, waitForWorkers } from "./support/split-transcode.ts";

/**
 * One video on two workers (CHUNK_SECONDS): a real API and two real worker processes on Postgres
 * and local storage. The upload's transcode is split into three chunks: the first run encodes the
 * first and the audio, chunk jobs the rest, the API lists them; the published HLS plays every source
 * frame once and in order across the joins, in TS and fMP4; progress and chunks done only grow.
 * The same on S3 and on GCS, with Pub/Sub: split-transcode-cloud.test.ts.
 */
describe("split transcodes on two workers (local storage, Postgres transport)", () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ env: SPLIT_ENV, workers: 2 });
    await waitForWorkers(t, 2);
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  for (const segmentFormat of ["TS", "FMP4"] as const) {
    it(
      `${segmentFormat}: splits, lists the chunks in order and plays every frame once across the joins`,
      () => uploadSplitAndCheck(t, segmentFormat),
      120_000,
    );
  }
});
