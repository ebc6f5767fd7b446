import { access } from "node:fs/promises";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { freePort } from "../../src/free-port.ts";
import { createS3Client } from "../../src/shared/s3-client.ts";
import { startTestApp, type TestApp } from "./app.ts";
import { inject } from "vitest";
import { sharedLocalServer, startDetachedServer, startLocalServer } from "./local-server.ts";

const MOTO_SERVER = path.resolve(import.meta.dirname, "../../.tools/emulators/bin/moto_server");
const START_TIMEOUT_MS = 30_000;

/** Keys moto takes (it checks no signatures), given to the API and workers as S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY. */
export const MOTO_KEYS = { accessKeyId: "testing", secretAccessKey: "testing" };

export interface MotoS3 {
  /** `http://127.0.0.1:N`, the S3_ENDPOINT. */
  endpoint: string;
  /** Creates a bucket and returns the env that points the API and worker at it (STORAGE=s3, path style). */
  createBucket(): Promise<Record<string, string>>;
}

/** A moto server of the caller's own (`startOwnMotoS3`), which it may freeze and must stop. */
export interface OwnMotoS3 extends MotoS3 {
  /** Stops (SIGSTOP) or resumes (SIGCONT) the server: it keeps its connections and answers nothing. */
  freeze(frozen: boolean): void;
  stop(): Promise<void>;
}

async function motoInstalled(): Promise<void> {
  try {
    await access(MOTO_SERVER);
  } catch {
    throw new Error(
      `moto is not installed (${MOTO_SERVER} is missing): run \`npm run setup:emulators\` ` +
        `(scripts/emulators-requirements.txt pins moto[server])`,
    );
  }
}

const motoArgs = (port: number) => ["-H", "127.0.0.1", "-p", String(port)];
const answers = (endpoint: string) => () => fetch(`${endpoint}/moto-api/`).then((r) => r.ok);

function motoAt(endpoint: string): MotoS3 {
  const connection = { endpoint, region: "us-east-1", forcePathStyle: true, credentials: MOTO_KEYS };
  return {
    endpoint,
    async createBucket() {
      const bucket = `videograph-${randomUUID().slice(0, 8)}`;
      const client = createS3Client(connection);
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      client.destroy();
      return {
        STORAGE: "s3",
        S3_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        S3_REGION: "us-east-1",
        S3_FORCE_PATH_STYLE: "true",
        S3_ACCESS_KEY_ID: MOTO_KEYS.accessKeyId,
        S3_SECRET_ACCESS_KEY: MOTO_KEYS.secretAccessKey,
      };
    },
  };
}

/**
 * The run's moto S3 server (installed by `npm run setup:emulators` into .tools/emulators): started
 * on a free 127.0.0.1 port by the first test file that asks, shared by every file after it (each
 * works in buckets of its own, `createBucket`), stopped by the global setup's teardown. Throws when
 * moto is not installed: the S3 tests fail rather than skip. A file that freezes or stops the
 * server takes one of its own (`startOwnMotoS3`).
 */
export async function startMotoS3(): Promise<MotoS3> {
  await motoInstalled();
  const runDir = inject("mediaFixturesDir");
  const shared = await sharedLocalServer(
    runDir,
    "moto",
    async () => {
      const port = await freePort();
      const endpoint = `http://127.0.0.1:${port}`;
      const pid = await startDetachedServer({
        name: `moto on port ${port}`,
        command: MOTO_SERVER,
        args: motoArgs(port),
        logFile: path.join(runDir, "moto.log"),
        ready: answers(endpoint),
        startTimeoutMs: START_TIMEOUT_MS,
      });
      return { address: endpoint, pid };
    },
    START_TIMEOUT_MS + 15_000,
  );
  if (shared.address === null) throw new Error(`moto did not start: ${shared.reason}`);
  return motoAt(shared.address);
}

/** A moto server of the caller's own, which it may freeze; it stops it, or it ends with this process. */
export async function startOwnMotoS3(): Promise<OwnMotoS3> {
  await motoInstalled();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const { pid, stop } = await startLocalServer({
    name: `moto on port ${port}`,
    command: MOTO_SERVER,
    args: motoArgs(port),
    ready: answers(endpoint),
    startTimeoutMs: START_TIMEOUT_MS,
    pollMs: 200,
  });
  return {
    ...motoAt(endpoint),
    freeze: (frozen) => process.kill(pid, frozen ? "SIGSTOP" : "SIGCONT"),
    stop: async () => {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // It has exited already.
      }
      await stop();
    },
  };
}

/** The API and its worker on a fresh bucket of the run's moto server; `stop` ends both. */
export async function startAppOnMotoS3(): Promise<{ t: TestApp; moto: MotoS3; stop: () => Promise<void> }> {
  const moto = await startMotoS3();
  const env = await moto.createBucket();
  const t = await startTestApp({ env, workerEnv: env });
  return { t, moto, stop: () => t.stop() };
}
