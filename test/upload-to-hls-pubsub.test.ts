import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { uploadClipAndCheckLadder } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const emulator = await startPubSubEmulator();
if (emulator) process.env.PUBSUB_EMULATOR_HOST = emulator.host;
else console.warn(`[test] Pub/Sub upload flow SKIPPED: ${pubSubEmulatorUnavailableReason}`);

describe.skipIf(!emulator)("the same flow with TRANSPORT=pubsub (real Pub/Sub emulator)", () => {
  let t: TestApp;
  let clip: string;
  beforeAll(async () => {
    t = await startTestApp({
      env: { TRANSPORT: "pubsub", GOOGLE_CLOUD_PROJECT: `videograph-e2e-${randomUUID().slice(0, 8)}` },
    });
    clip = await makeClip({ width: 1280, height: 720, seconds: 8, audio: true });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("takes an 8-second 720p clip to READY through Pub/Sub", async () => {
    await uploadClipAndCheckLadder(t, clip);
  });
});
