import { ListMultipartUploadsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { stat } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../src/shared/s3-client.ts";
import { partialUploadKey, videoPrefix } from "../src/protocol/storage-layout.ts";
import { UPLOAD_EXPIRED_REASON } from "../src/uploads/expire-uploads.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { MOTO_KEYS, startMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { createUpload } from "./support/uploads.ts";

const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status error } } }`);
/** Upload URLs live 3 s and expire with no grace: the sweep then runs every second. */
const EXPIRING = { UPLOAD_URL_TTL_SECONDS: "3", UPLOAD_EXPIRY_GRACE_SECONDS: "0" };

const statusOf = async (t: TestApp, id: string) =>
  (await t.app.services.db.video.findUniqueOrThrow({ where: { id } })).status;

describe("abandoned uploads expire (local storage)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: EXPIRING });
  });
  afterAll(() => t?.stop());

  it(`a partial upload whose URL expired is CANCELED with a reason, its partial file deleted, and subscribers \
told; a finished upload is left alone`, async () => {
    const abandoned = await createUpload(t, "abandoned");
    const finished = await createUpload(t, "finished");
    const events = collectSubscription(t.wsClient(), EVENTS, { id: abandoned.id }).done;
    const put = (url: string, body: Uint8Array<ArrayBuffer>, range: string) =>
      fetch(`${t.url}${url}`, { method: "PUT", body, headers: { "content-range": range } });
    expect((await put(abandoned.uploadUrl, new Uint8Array(100), "bytes 0-99/1000")).status).toBe(308);
    expect((await put(finished.uploadUrl, new Uint8Array(10).fill(1), "bytes 0-9/10")).status).toBe(200);
    const partial = path.join(t.dataDir, partialUploadKey(abandoned.id));
    expect((await stat(partial)).size).toBe(100);

    await expect.poll(() => statusOf(t, abandoned.id), { timeout: 10_000 }).toBe("CANCELED");
    const video = await t.app.services.db.video.findUniqueOrThrow({ where: { id: abandoned.id } });
    expect(video.error).toBe(UPLOAD_EXPIRED_REASON);
    expect(video.finishedAt!.getTime()).toBeGreaterThanOrEqual(new Date(abandoned.expiresAt).getTime());
    await expect.poll(() => stat(path.join(t.dataDir, videoPrefix(abandoned.id))).catch(() => null)).toBeNull();
    expect((await events).at(-1)!.videoEvents.video).toEqual({ status: "CANCELED", error: UPLOAD_EXPIRED_REASON });
    expect(await statusOf(t, finished.id)).toBe("QUEUED");
    // The expired URL takes nothing more.
    expect((await put(abandoned.uploadUrl, new Uint8Array(100), "bytes 100-199/1000")).status).toBe(403);
  });
});

describe("abandoned uploads expire (S3)", () => {
  let t: TestApp;
  let moto: MotoS3;
  let env: Record<string, string>;
  beforeAll(async () => {
    moto = await startMotoS3();
    env = await moto.createBucket();
    t = await startTestApp({ worker: false, env: { ...env, ...EXPIRING } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("its multipart upload is aborted and its pieces deleted", async () => {
    const created = await createUpload(t, "abandoned");
    const chunk = 9 * 1024 * 1024;
    const res = await fetch(`${t.url}${created.uploadUrl}`, {
      method: "PUT",
      body: new Uint8Array(chunk),
      headers: { "content-range": `bytes 0-${chunk - 1}/${3 * chunk}` },
    });
    expect(res.status).toBe(308);
    const s3 = createS3Client({
      endpoint: env.S3_ENDPOINT,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: MOTO_KEYS,
    });
    const Prefix = `${videoPrefix(created.id)}/`;
    const held = async () => ({
      uploads: (await s3.send(new ListMultipartUploadsCommand({ Bucket: env.S3_BUCKET, Prefix }))).Uploads ?? [],
      objects: (await s3.send(new ListObjectsV2Command({ Bucket: env.S3_BUCKET, Prefix }))).Contents ?? [],
    });
    const before = await held();
    expect(before.uploads).toHaveLength(1);
    expect(before.objects.length).toBeGreaterThan(0);

    await expect.poll(() => statusOf(t, created.id), { timeout: 10_000 }).toBe("CANCELED");
    await expect.poll(held, { timeout: 5000 }).toEqual({ uploads: [], objects: [] });
    s3.destroy();
  });
});
