import { afterAll, beforeAll, describe, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { type GcsDeployment, startGcsDeployment } from "./support/gcs-emulator.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { uploadClipAndCheckLadder } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const pubsubEmulator = await startPubSubEmulator();
if (!pubsubEmulator)
  throw new Error(`the Pub/Sub emulator is needed for GCS upload notifications: ${pubSubEmulatorUnavailableReason}`);
process.env.PUBSUB_EMULATOR_HOST = pubsubEmulator.host;

describe(`the same flow with STORAGE=gcs (fake-gcs-server; its OBJECT_FINALIZE events through the Pub/Sub emulator \
complete the upload)`, () => {
  let gcs: GcsDeployment | undefined;
  let t: TestApp | undefined;
  let clip: string;
  beforeAll(async () => {
    gcs = await startGcsDeployment(pubsubEmulator.host, "videograph-e2e");
    t = await startTestApp({ env: { ...gcs.storageEnv, ...gcs.notificationEnv }, workerEnv: gcs.storageEnv });
    clip = await makeClip({ width: 1280, height: 720, seconds: 8, audio: true });
  });
  afterAll(async () => {
    await t?.stop();
    await gcs?.stop();
  });

  it(`takes an 8-second 720p clip to READY: resumable upload session, worker reading the source by signed URL, \
segments from the bucket`, async () => {
    await uploadClipAndCheckLadder(t!, clip);
  });
});
