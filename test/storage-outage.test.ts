import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../src/shared/s3-client.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { startCuttableProxy, type CuttableProxy } from "./support/cuttable-proxy.ts";
import { MOTO_KEYS, startMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { canMountTmpfs } from "./support/tmpfs.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const JOBS = graphql(
  `query($id: ID!) { video(id: $id) { status error jobs(first: 1) { edges { node { attempt runs { status error } } } } } }`,
);

/**
 * S3 (moto) behind a proxy the test cuts: new connections refused, requests on kept-alive ones
 * reset, as when a store goes away. The API and its worker both reach the bucket through it.
 */
describe("a storage outage (S3 behind a cut proxy, real API and worker)", () => {
  let moto: MotoS3;
  let proxy: CuttableProxy;
  let env: Record<string, string>;
  let clip: Uint8Array<ArrayBuffer>;
  const apps: TestApp[] = [];
  beforeAll(async () => {
    moto = await startMotoS3();
    env = await moto.createBucket();
    proxy = await startCuttableProxy(moto.endpoint);
    clip = new Uint8Array(await readFile(await makeClip({ width: 320, height: 180, seconds: 8, audio: true })));
  });
  afterEach(async () => {
    await proxy.restore().catch(() => undefined);
    for (const t of apps.splice(0)) await t.stop();
  });
  afterAll(async () => {
    await proxy?.stop();
  });
  const start = async (apiEnv: Record<string, string> = {}, workerEnv: Record<string, string> = {}) => {
    const throughProxy = { ...env, S3_ENDPOINT: proxy.url };
    const t = await startTestApp({
      env: { ...throughProxy, ...apiEnv },
      workerEnv: { ...throughProxy, LOG_LEVEL: "info", ...workerEnv },
    });
    apps.push(t);
    return t;
  };
  /** Resolves once the first segment of `videoId` is in the bucket (asked of moto directly). */
  const firstSegment = async (videoId: string) => {
    const s3 = createS3Client({
      endpoint: moto.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: MOTO_KEYS,
    });
    try {
      await expect
        .poll(
          async () =>
            (
              await s3.send(new ListObjectsV2Command({ Bucket: env.S3_BUCKET, Prefix: `videos/${videoId}/hls/` }))
            ).Contents?.some((o) => /seg_\d+\./.test(o.Key!)) ?? false,
          { timeout: 60_000, interval: 100 },
        )
        .toBe(true);
    } finally {
      s3.destroy();
    }
  };

  it("an outage of 12 s mid-encode is waited out: the same attempt ends READY", async () => {
    const t = await start();
    const { id, uploadUrl } = await createUpload(t, "outage");
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: clip })).status).toBe(200);
    await firstSegment(id);
    await proxy.cut();
    await new Promise((r) => setTimeout(r, 12_000));
    await proxy.restore();
    expect((await final).status).toBe("READY");
    const video = (await t.gql(JOBS, { id })).data.video!;
    expect(video.jobs.edges[0]!.node.attempt).toBe(1);
    expect(video.jobs.edges[0]!.node.runs.map((r) => r.status)).toEqual(["SUCCEEDED"]);
  });

  it("an outage longer than STORAGE_OUTAGE_PATIENCE_SECONDS fails the video with an error naming no address", async () => {
    const t = await start({ JOB_MAX_ATTEMPTS: "1" }, { STORAGE_OUTAGE_PATIENCE_SECONDS: "3" });
    const { id, uploadUrl } = await createUpload(t, "long outage");
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: clip })).status).toBe(200);
    await firstSegment(id);
    await proxy.cut();
    const video = await final;
    expect(video.status).toBe("FAILED");
    expect(video.error).toMatch(/^Storage is unavailable: the storage service could not be reached \(E[A-Z]+\)$/);
    expect(video.error).not.toMatch(/127\.0\.0\.1|:\d{2,5}\b/);
  });

  it("a PUT during an outage is answered 503 with Retry-After, and the upload goes on after it", async () => {
    const t = await start();
    const { id, uploadUrl } = await createUpload(t, "put in an outage");
    await proxy.cut();
    const refused = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: clip });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("60");
    expect((await refused.json()).error).toMatch(/^The server's storage is unavailable/);
    await proxy.restore();
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: clip })).status).toBe(200);
    expect((await final).status).toBe("READY");
  });
});

describe.skipIf(!canMountTmpfs)("local storage made read-only (as root: a read-only bind mount of DATA_DIR)", () => {
  const run = promisify(execFile);
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
    await run("mount", ["--bind", t.dataDir, t.dataDir]);
  });
  afterAll(async () => {
    await run("umount", ["-l", t.dataDir]).catch(() => undefined);
    await t?.stop();
  });

  it("a PUT is answered 503 with Retry-After (not 500), and the same PUT succeeds once it is writable", async () => {
    const { uploadUrl } = await createUpload(t, "read-only");
    const body = new Uint8Array(4096).fill(1);
    await run("mount", ["-o", "remount,bind,ro", t.dataDir]);
    const refused = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("60");
    await run("mount", ["-o", "remount,bind,rw", t.dataDir]);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body })).status).toBe(200);
  });
});
