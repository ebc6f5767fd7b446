import { randomUUID } from "node:crypto";
import { access, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { PubSub } from "@google-cloud/pubsub";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createUploadNotificationListener, type NotificationOutcome } from "../src/uploads/gcs-notifications.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql, type VariablesOf } from "./support/graphql.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";

const MAX_UPLOAD_BYTES = 1000;

// Not the shared CREATE_UPLOAD (support/uploads.ts): this checks uploadSize and each refusal's own fields.
const CREATE_UPLOAD = graphql(`
  mutation($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename
      ... on CreateUploadSuccess { uploadUrl video { id status uploadSize } }
      ... on ValidationError { field }
      ... on FileTooLargeError { maxBytes }
      ... on Error { message }
    }
  }`);
const COMPLETE_UPLOAD = graphql(`
  mutation($id: ID!) {
    completeUpload(videoId: $id) {
      __typename
      ... on CompleteUploadSuccess { video { id status uploadedBytes updatedAt } }
      ... on NotFoundError { id }
      ... on ValidationError { field }
      ... on FileTooLargeError { maxBytes }
      ... on Error { message }
    }
  }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) { status jobs(first: 10) { edges { node { kind status } } } } }`);

async function createVideo(t: TestApp, input: Partial<VariablesOf<typeof CREATE_UPLOAD>["input"]> = {}) {
  const res = await t.gql(CREATE_UPLOAD, { input: { title: "direct upload", ...input } });
  expect(res.errors).toBeUndefined();
  return expectTypename(res.data.createUpload, "CreateUploadSuccess");
}

/** Puts a file where a direct-to-storage upload ends, as if GCS had received it. */
async function landSource(t: TestApp, videoId: string, bytes: number): Promise<string> {
  const file = path.join(t.dataDir, "videos", videoId, "source", "upload");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, new Uint8Array(bytes).fill(7));
  return file;
}

const complete = async (t: TestApp, id: string) => (await t.gql(COMPLETE_UPLOAD, { id })).data.completeUpload;
const jobsOf = async (t: TestApp, id: string) => (await t.gql(VIDEO, { id })).data.video!.jobs.edges;

describe("completeUpload (local storage, no worker)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) } });
  });
  afterAll(() => t?.stop());

  test("queues a video whose source landed in storage, once: a second call changes nothing", async () => {
    const { video } = await createVideo(t);
    await landSource(t, video.id, 600);
    const first = await complete(t, video.id);
    expect(first).toMatchObject({
      __typename: "CompleteUploadSuccess",
      video: { id: video.id, status: "QUEUED", uploadedBytes: 600 },
    });
    expect(await jobsOf(t, video.id)).toEqual([{ node: { kind: "TRANSCODE", status: "QUEUED" } }]);

    const second = await complete(t, video.id);
    expect(second).toEqual(first);
    expect(await jobsOf(t, video.id)).toHaveLength(1);
  });

  test("returns a video uploaded through its local upload URL unchanged", async () => {
    const { uploadUrl, video } = await createVideo(t);
    const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(300).fill(1) });
    expect(res.status).toBe(200);
    expect(await complete(t, video.id)).toMatchObject({
      __typename: "CompleteUploadSuccess",
      video: { status: "QUEUED", uploadedBytes: 300 },
    });
    expect(await jobsOf(t, video.id)).toHaveLength(1);
  });

  test("refuses while nothing, or nothing but an empty file, has arrived; the video keeps waiting", async () => {
    const { video } = await createVideo(t);
    expect(await complete(t, video.id)).toMatchObject({
      __typename: "ValidationError",
      field: "videoId",
      message: expect.stringMatching(/not finished/),
    });
    await landSource(t, video.id, 0);
    expect(await complete(t, video.id)).toMatchObject({
      __typename: "ValidationError",
      message: expect.stringMatching(/empty/),
    });
    expect((await t.gql(VIDEO, { id: video.id })).data.video).toEqual({
      status: "WAITING_FOR_UPLOAD",
      jobs: { edges: [] },
    });
  });

  test("refuses a source past MAX_UPLOAD_BYTES and deletes it", async () => {
    const { video } = await createVideo(t);
    const file = await landSource(t, video.id, MAX_UPLOAD_BYTES + 1);
    expect(await complete(t, video.id)).toEqual({
      __typename: "FileTooLargeError",
      maxBytes: MAX_UPLOAD_BYTES,
      message: expect.any(String),
    });
    await expect(access(file)).rejects.toThrow();
    expect((await t.gql(VIDEO, { id: video.id })).data.video!.status).toBe("WAITING_FOR_UPLOAD");
  });

  test("answers unknown and malformed ids with NotFoundError", async () => {
    const id = randomUUID();
    expect(await complete(t, id)).toEqual({ __typename: "NotFoundError", id, message: `No video with id "${id}"` });
    expect(await complete(t, "not-a-uuid")).toMatchObject({ __typename: "NotFoundError", id: "not-a-uuid" });
  });

  test("createUpload takes a declared size (bound to the upload URL) and validates size and origin", async () => {
    const { uploadUrl, video } = await createVideo(t, { size: 500 });
    expect(video.uploadSize).toBe(500);
    const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(400) });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/differs from the 500 bytes declared/);

    const tooBig = await t.gql(CREATE_UPLOAD, { input: { title: "big", size: MAX_UPLOAD_BYTES + 1 } });
    expect(tooBig.data.createUpload).toMatchObject({ __typename: "FileTooLargeError", maxBytes: MAX_UPLOAD_BYTES });
    for (const size of [0, 1.5, -3]) {
      expect((await t.gql(CREATE_UPLOAD, { input: { title: "x", size } })).data.createUpload).toMatchObject({
        __typename: "ValidationError",
        field: "size",
      });
    }
    for (const origin of ["cms.example.com", "https://cms.example.com/path", "null"]) {
      expect((await t.gql(CREATE_UPLOAD, { input: { title: "x", origin } })).data.createUpload).toMatchObject({
        __typename: "ValidationError",
        field: "origin",
      });
    }
    expect(
      (await t.gql(CREATE_UPLOAD, { input: { title: "x", origin: "https://cms.example.com" } })).data.createUpload
        .__typename,
    ).toBe("CreateUploadSuccess");
  });
});

// There is no GCS here: the bucket's OBJECT_FINALIZE notification is simulated by publishing a
// message shaped like one (attributes + object resource JSON) to a topic in the real Pub/Sub
// emulator, and the uploaded file is put in local storage.
const emulator = await startPubSubEmulator();
if (emulator) process.env.PUBSUB_EMULATOR_HOST = emulator.host;
else console.warn(`[test] simulated GCS notification tests SKIPPED: ${pubSubEmulatorUnavailableReason}`);

const BUCKET = "videograph-uploads";

async function notificationTopic(projectId: string) {
  const pubsub = new PubSub({ projectId });
  const [topic] = await pubsub.createTopic("gcs-object-finalize");
  const [subscription] = await topic.createSubscription("gcs-object-finalize-api");
  return { pubsub, topic, subscription: subscription.name.split("/").pop()! };
}

/** A message as GCS publishes it for a notification config with payload format JSON_API_V1. */
function gcsNotification(objectId: string, size: number, overrides: Record<string, string> = {}) {
  const attributes = {
    notificationConfig: `projects/_/buckets/${BUCKET}/notificationConfigs/1`,
    eventType: "OBJECT_FINALIZE",
    payloadFormat: "JSON_API_V1",
    bucketId: BUCKET,
    objectId,
    objectGeneration: "1763700000000000",
    eventTime: new Date().toISOString(),
    ...overrides,
  };
  const resource = {
    kind: "storage#object",
    id: `${BUCKET}/${objectId}/1763700000000000`,
    name: objectId,
    bucket: BUCKET,
    generation: "1763700000000000",
    size: String(size),
    contentType: "video/mp4",
  };
  return { data: Buffer.from(JSON.stringify(resource)), attributes };
}

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!emulator)(
  "bucket notifications complete uploads (simulated GCS notification, Pub/Sub emulator, local storage)",
  () => {
    test(`an API started with GCS_NOTIFICATION_SUBSCRIPTION queues the video when its source's finalize \
notification arrives`, async () => {
      const projectId = `videograph-test-${randomUUID().slice(0, 8)}`;
      const { pubsub, topic, subscription } = await notificationTopic(projectId);
      const t = await startTestApp({
        worker: false,
        env: {
          GCS_NOTIFICATION_SUBSCRIPTION: subscription,
          GOOGLE_CLOUD_PROJECT: projectId,
          MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
        },
      });
      try {
        const { video } = await createVideo(t);
        await landSource(t, video.id, 700);
        await topic.publishMessage(gcsNotification(`videos/${video.id}/source/upload`, 700));
        const status = await waitFor("the video to be queued", async () => {
          const v = (await t.gql(VIDEO, { id: video.id })).data.video!;
          return v.status === "QUEUED" ? v : undefined;
        });
        expect(status.jobs.edges).toEqual([{ node: { kind: "TRANSCODE", status: "QUEUED" } }]);
      } finally {
        await t.stop();
        await pubsub.close();
      }
    });

    test(`each message is handled once and acked: only uploaded sources of the bucket count, duplicates change \
nothing, refusals are not retried`, async () => {
      const projectId = `videograph-test-${randomUUID().slice(0, 8)}`;
      const { pubsub, topic, subscription } = await notificationTopic(projectId);
      const t = await startTestApp({ worker: false, env: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) } });
      const outcomes = new Map<string, NotificationOutcome[]>();
      const listener = createUploadNotificationListener({
        subscription,
        projectId,
        bucket: BUCKET,
        deps: t.app.services,
        onOutcome: (outcome, messageId) => outcomes.set(messageId, [...(outcomes.get(messageId) ?? []), outcome]),
      });
      try {
        await listener.start();
        const uploaded = (await createVideo(t)).video.id;
        await landSource(t, uploaded, 500);
        const empty = (await createVideo(t)).video.id;
        await landSource(t, empty, 0);
        const unknown = randomUUID();

        const sent: Record<string, string> = {};
        const send = async (name: string, message: { data: Buffer; attributes: Record<string, string> }) => {
          sent[name] = await topic.publishMessage(message);
        };
        await send("source", gcsNotification(`videos/${uploaded}/source/upload`, 500));
        await waitFor("the first notification", () => (outcomes.has(sent.source!) ? true : undefined));
        await send("duplicate", gcsNotification(`videos/${uploaded}/source/upload`, 500));
        await send("segment", gcsNotification(`videos/${uploaded}/hls/720p/seg_00000.ts`, 100));
        await send("delete", gcsNotification(`videos/${empty}/source/upload`, 0, { eventType: "OBJECT_DELETE" }));
        await send(
          "otherBucket",
          gcsNotification(`videos/${empty}/source/upload`, 0, { bucketId: "someone-elses-bucket" }),
        );
        await send("empty", gcsNotification(`videos/${empty}/source/upload`, 0));
        await send("unknown", gcsNotification(`videos/${unknown}/source/upload`, 10));
        await send("notGcs", { data: Buffer.from("{}"), attributes: { hello: "world" } });
        await waitFor("every notification", () =>
          Object.values(sent).every((id) => outcomes.has(id)) ? true : undefined,
        );

        const outcomeOf = (name: string) => outcomes.get(sent[name]!);
        expect(outcomeOf("source")).toEqual([{ outcome: "queued", videoId: uploaded }]);
        expect(outcomeOf("duplicate")).toEqual([{ outcome: "unchanged", videoId: uploaded }]);
        for (const name of ["segment", "delete", "otherBucket", "notGcs"])
          expect(outcomeOf(name)).toEqual([{ outcome: "ignored", reason: expect.any(String) }]);
        expect(outcomeOf("empty")).toEqual([
          { outcome: "rejected", videoId: empty, reason: expect.stringMatching(/empty/) },
        ]);
        expect(outcomeOf("unknown")).toEqual([
          { outcome: "rejected", videoId: unknown, reason: expect.stringMatching(/No video/) },
        ]);

        expect(await jobsOf(t, uploaded)).toEqual([{ node: { kind: "TRANSCODE", status: "QUEUED" } }]);
        expect((await t.gql(VIDEO, { id: empty })).data.video!.status).toBe("WAITING_FOR_UPLOAD");
        // Acked messages are not delivered again (the emulator's ack deadline is 10 s).
        await new Promise((r) => setTimeout(r, 11_000));
        expect([...outcomes.values()].every((list) => list.length === 1)).toBe(true);
      } finally {
        await listener.stop();
        await t.stop();
        await pubsub.close();
      }
    });

    test("start fails with a clear message when the subscription does not exist", async () => {
      const t = await startTestApp({ worker: false });
      const listener = createUploadNotificationListener({
        subscription: "missing",
        projectId: `videograph-test-${randomUUID().slice(0, 8)}`,
        bucket: null,
        deps: t.app.services,
      });
      try {
        await expect(listener.start()).rejects.toThrow(/subscription missing does not exist.*setup:gcs/);
      } finally {
        await listener.stop();
        await t.stop();
      }
    });
  },
);
