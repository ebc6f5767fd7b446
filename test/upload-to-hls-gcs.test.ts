import { randomUUID } from "node:crypto";
import { PubSub } from "@google-cloud/pubsub";
import { afterAll, beforeAll, describe, it } from "vitest";
import { createGcsClient } from "../src/shared/gcs-client.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { startGcsEmulator, type GcsEmulator } from "./support/gcs-emulator.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { uploadClipAndCheckLadder } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const pubsubEmulator = await startPubSubEmulator();
if (!pubsubEmulator)
  throw new Error(`the Pub/Sub emulator is needed for GCS upload notifications: ${pubSubEmulatorUnavailableReason}`);
process.env.PUBSUB_EMULATOR_HOST = pubsubEmulator.host;

describe(`the same flow with STORAGE=gcs (fake-gcs-server; its OBJECT_FINALIZE events through the Pub/Sub emulator \
complete the upload)`, () => {
  let gcs: GcsEmulator | undefined;
  let pubsub: PubSub | undefined;
  let t: TestApp | undefined;
  let clip: string;
  beforeAll(async () => {
    const projectId = `videograph-e2e-${randomUUID().slice(0, 8)}`;
    pubsub = new PubSub({ projectId });
    const [topic] = await pubsub.createTopic("gcs-object-finalize");
    await topic.createSubscription("gcs-object-finalize-api");
    gcs = await startGcsEmulator({
      notifications: {
        pubsubHost: pubsubEmulator.host,
        projectId,
        topic: "gcs-object-finalize",
        objectPrefix: "videos/",
      },
    });
    const bucket = `videograph-e2e-${randomUUID().slice(0, 8)}`;
    await createGcsClient(gcs.endpoint).createBucket(bucket);
    const storageEnv = { STORAGE: "gcs", GCS_BUCKET: bucket, GCS_API_ENDPOINT: gcs.endpoint };
    t = await startTestApp({
      env: { ...storageEnv, GOOGLE_CLOUD_PROJECT: projectId, GCS_NOTIFICATION_SUBSCRIPTION: "gcs-object-finalize-api" },
      workerEnv: storageEnv,
    });
    clip = await makeClip({ width: 1280, height: 720, seconds: 8, audio: true });
  });
  afterAll(async () => {
    await t?.stop();
    await gcs?.stop();
    await pubsub?.close();
  });

  it(`takes an 8-second 720p clip to READY: resumable upload session, worker reading the source by signed URL, \
segments from the bucket`, async () => {
    await uploadClipAndCheckLadder(t!, clip);
  });
});
