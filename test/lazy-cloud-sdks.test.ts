import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { type ServiceProcess, startApiProcess, startWorkerProcess, stopAllProcesses } from "./support/processes.ts";

const HOOK = path.resolve(import.meta.dirname, "support/record-packages.ts");
/** The SDKs of the cloud backends and what only they pull in. */
const CLOUD_SDK = /^(@google-cloud\/|@aws-sdk\/|@smithy\/|google-gax$|google-auth-library$|@grpc\/)/;
/** OpenTelemetry's SDK and exporter: loaded only when an OTLP endpoint is configured (the API package is always). */
const TRACING_SDK = /^@opentelemetry\/(sdk-|exporter-|otlp-|resources$|context-async-hooks$)/;

/**
 * Each cloud SDK (Pub/Sub, Cloud Storage, S3) weighs tens of MiB of resident memory once loaded:
 * the API and the worker of the embedded default (local storage, Postgres transport) load none of
 * them, and a configured backend loads its own. Every npm package the processes load is recorded
 * by a module hook (support/record-packages.ts).
 */
describe("cloud SDKs are loaded only when configured", () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), "videograph-lazy-sdks-"));
  });
  afterAll(async () => {
    await stopAllProcesses();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The packages `service` loaded, as recorded in `file`. */
  async function loadedBy(service: ServiceProcess, file: string): Promise<string[]> {
    const lines = (await readFile(file, "utf8")).trim().split("\n");
    return lines.filter((l) => l.startsWith(`${service.child.pid} `)).map((l) => l.split(" ")[1]!);
  }

  function recording(name: string) {
    const file = path.join(dir, `${name}.packages`);
    return { file, env: { NODE_OPTIONS: `--import=${HOOK}`, RECORD_PACKAGES_FILE: file } };
  }

  it("the default configuration's API and worker (local storage, Postgres transport, no tracing) load none, nor the tracing SDK", async () => {
    const { file, env } = recording("default");
    const backends = { DATABASE_URL: db.url, DATA_DIR: dir, STORAGE: "local", TRANSPORT: "postgres" };
    const api = await startApiProcess("api", { ...env, ...backends });
    const worker = await startWorkerProcess("worker", { ...env, ...backends });

    const apiPackages = await loadedBy(api, file);
    // The hook saw what the API runs on.
    expect(apiPackages).toEqual(expect.arrayContaining(["graphql-yoga", "graphql-ws", "pg", "@prisma/client"]));
    expect(apiPackages.filter((p) => CLOUD_SDK.test(p) || TRACING_SDK.test(p))).toEqual([]);
    const workerPackages = await loadedBy(worker, file);
    expect(workerPackages).toEqual(expect.arrayContaining(["pg", "zod", "@opentelemetry/api"]));
    expect(workerPackages.filter((p) => CLOUD_SDK.test(p) || TRACING_SDK.test(p))).toEqual([]);

    await worker.stop();
    await api.stop();
  });

  it("on S3 storage, the API and the worker load the S3 SDK and neither Google SDK", async () => {
    const { file, env } = recording("s3");
    // Nothing is asked of the bucket before a request needs it: the endpoint is never reached.
    const backends = {
      DATABASE_URL: db.url,
      DATA_DIR: dir,
      STORAGE: "s3",
      S3_BUCKET: "videograph-lazy",
      S3_ENDPOINT: "http://127.0.0.1:9",
      S3_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    };
    const api = await startApiProcess("api-s3", { ...env, ...backends });
    const worker = await startWorkerProcess("worker-s3", { ...env, ...backends });
    for (const service of [api, worker]) {
      const packages = await loadedBy(service, file);
      expect(packages).toContain("@aws-sdk/client-s3");
      expect(packages.filter((p) => /^(@google-cloud\/|google-gax$)/.test(p))).toEqual([]);
    }
    await worker.stop();
    await api.stop();
  });
});
