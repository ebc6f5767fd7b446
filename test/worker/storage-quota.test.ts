import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { createGcsWorkerStorage } from "../../render-worker/storage/gcs.ts";
import { createS3WorkerStorage } from "../../render-worker/storage/s3.ts";
import { fixturesDir } from "../support/media-fixtures.ts";

/**
 * moto and fake-gcs-server cannot run out of quota, so a stand-in server on 127.0.0.1 answers
 * every request as a full S3 or GCS does; the real SDKs parse the answers.
 */
let answer: { status: number; contentType: string; body: string };
let server: Server;
let origin: string;
let file: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(answer.status, { "content-type": answer.contentType });
      res.end(answer.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  file = path.join(fixturesDir(), "segment.ts");
  await writeFile(file, Buffer.alloc(1024, 1));
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

const s3Error = (status: number, code: string) => ({
  status,
  contentType: "application/xml",
  body:
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code} says ` +
    `no</Message><RequestId>1</RequestId></Error>`,
});

async function uploadFailure(storage: ReturnType<typeof createS3WorkerStorage>): Promise<unknown> {
  return storage
    .upload("videos/v1/hls/720p/seg_00000.ts", file, { contentType: "video/mp2t", cacheControl: "no-store" })
    .then(
      () => null,
      (err: unknown) => err,
    );
}

describe("storage quota errors from cloud stores are a full storage (stand-in server; no emulator can fill up)", () => {
  const s3 = () =>
    createS3WorkerStorage({
      bucket: "media",
      endpoint: origin,
      region: "us-east-1",
      forcePathStyle: true,
      // Given, not read from process.env, which this file shares with others (vitest.config.ts).
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      signedUrlTtlSeconds: 60,
    });

  it("S3 QuotaExceeded (Ceph RGW) and XMinioStorageFull (MinIO, 507)", async () => {
    for (const [status, code] of [
      [403, "QuotaExceeded"],
      [507, "XMinioStorageFull"],
    ] as const) {
      answer = s3Error(status, code);
      const err = await uploadFailure(s3());
      expect(err, code).not.toBeNull();
      expect(storageUnavailable(err), code).toMatchObject({ full: true, retryable: true });
    }
  });

  it("an S3 refusal of one object (AccessDenied) is not a storage failure", async () => {
    answer = s3Error(403, "AccessDenied");
    expect(storageUnavailable(await uploadFailure(s3()))).toBeNull();
  });

  it("GCS quotaExceeded (403)", async () => {
    answer = {
      status: 403,
      contentType: "application/json",
      body: JSON.stringify({
        error: {
          code: 403,
          message: "The project exceeded its quota",
          errors: [{ reason: "quotaExceeded", message: "quota", domain: "usageLimits" }],
        },
      }),
    };
    const gcs = createGcsWorkerStorage({ bucket: "media", apiEndpoint: origin, signedUrlTtlSeconds: 60 });
    const err = await uploadFailure(gcs);
    expect(err).not.toBeNull();
    expect(storageUnavailable(err)).toMatchObject({ full: true, retryable: true });
  });
});
