import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { type GcsDeployment, startGcsDeployment } from "./support/gcs-emulator.ts";
import { startMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { SPLIT_ENV, uploadSplitAndCheck, waitForWorkers } from "./support/split-transcode.ts";

const emulator = await startPubSubEmulator();
if (emulator) process.env.PUBSUB_EMULATOR_HOST = emulator.host;
else console.warn(`[test] split transcodes on S3 and GCS with Pub/Sub SKIPPED: ${pubSubEmulatorUnavailableReason}`);

/**
 * A split transcode with the other storages and transport (split-transcode.test.ts has local
 * storage and Postgres): moto's S3 server, where the workers publish segments and the API writes the
 * playlists it lists, read back through presigned URLs; the Pub/Sub emulator, which carries the
 * chunk jobs and the runs' events.
 */
describe.skipIf(!emulator)("split transcodes on two workers (S3 storage, Pub/Sub transport)", () => {
  let moto: MotoS3;
  let t: TestApp;

  beforeAll(async () => {
    moto = await startMotoS3();
    const s3 = await moto.createBucket();
    const pubsub = { TRANSPORT: "pubsub", GOOGLE_CLOUD_PROJECT: `videograph-split-${randomUUID().slice(0, 8)}` };
    t = await startTestApp({ env: { ...s3, ...pubsub, ...SPLIT_ENV }, workerEnv: s3, workers: 2 });
    await waitForWorkers(t, 2);
  }, 90_000);
  afterAll(async () => {
    await t?.stop();
  });

  it(
    "FMP4: splits, lists the chunks in order and plays every frame once across the joins",
    () => uploadSplitAndCheck(t, "FMP4"),
    120_000,
  );
});

/**
 * The same on fake-gcs-server (the storage of a deployment on Google Cloud): the upload goes to a
 * resumable session and completes through the emulator's OBJECT_FINALIZE event on the Pub/Sub
 * emulator, the workers publish segments to the bucket and the API writes the playlists it lists,
 * served under `/media/` with the segments' signed URLs to the emulator.
 */
describe.skipIf(!emulator)("split transcodes on two workers (GCS storage, Pub/Sub transport)", () => {
  let gcs: GcsDeployment | undefined;
  let t: TestApp | undefined;

  beforeAll(async () => {
    gcs = await startGcsDeployment(emulator!.host, "videograph-split");
    t = await startTestApp({
      env: { ...gcs.storageEnv, ...gcs.notificationEnv, TRANSPORT: "pubsub", ...SPLIT_ENV },
      workerEnv: gcs.storageEnv,
      workers: 2,
    });
    await waitForWorkers(t, 2);
  }, 90_000);
  afterAll(async () => {
    await t?.stop();
    await gcs?.stop();
  });

  it(
    "FMP4: splits, lists the chunks in order and plays every frame once across the joins",
    () => uploadSplitAndCheck(t!, "FMP4"),
    120_000,
  );
});
