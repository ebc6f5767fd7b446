import { access } from "node:fs/promises";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { freePort } from "../../src/free-port.ts";
import { createS3Client } from "../../src/shared/s3-client.ts";
import { startTestApp, type TestApp } from "./app.ts";
import { startLocalServer } from "./local-server.ts";

const MOTO_SERVER = path.resolve(import.meta.dirname, "../../.tools/emulators/bin/moto_server");
const START_TIMEOUT_MS = 30_000;

/** Credentials moto takes (it checks no signatures); the SDK's default chain reads them from the environment. */
const MOTO_CREDENTIALS = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" };

export interface MotoS3 {
  /** `http://127.0.0.1:N`, the S3_ENDPOINT. */
  endpoint: string;
  /** Creates a bucket and returns the env that points the API and worker at it (STORAGE=s3, path style). */
  createBucket(): Promise<Record<string, string>>;
  /** Stops (SIGSTOP) or resumes (SIGCONT) the server: it keeps its connections and answers nothing. */
  freeze(frozen: boolean): void;
  stop(): Promise<void>;
}

/**
 * Starts moto's S3 server (installed by `npm run setup:emulators` into .tools/emulators) on a
 * free 127.0.0.1 port and resolves once it answers. Throws when moto is not installed: the S3
 * tests fail rather than skip.
 */
export async function startMotoS3(): Promise<MotoS3> {
  try {
    await access(MOTO_SERVER);
  } catch {
    throw new Error(
      `moto is not installed (${MOTO_SERVER} is missing): run \`npm run setup:emulators\` ` +
        `(scripts/emulators-requirements.txt pins moto[server])`,
    );
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const { pid, stop } = await startLocalServer({
    name: `moto on port ${port}`,
    command: MOTO_SERVER,
    args: ["-H", "127.0.0.1", "-p", String(port)],
    ready: () => fetch(`${endpoint}/moto-api/`).then((r) => r.ok),
    startTimeoutMs: START_TIMEOUT_MS,
    pollMs: 200,
  });

  const connection = { endpoint, region: "us-east-1", forcePathStyle: true };
  return {
    endpoint,
    async createBucket() {
      const bucket = `videograph-${randomUUID().slice(0, 8)}`;
      Object.assign(process.env, MOTO_CREDENTIALS);
      const client = createS3Client(connection);
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      client.destroy();
      return {
        STORAGE: "s3",
        S3_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        S3_REGION: "us-east-1",
        S3_FORCE_PATH_STYLE: "true",
        ...MOTO_CREDENTIALS,
      };
    },
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

/** The API and its worker on a fresh bucket of a moto server of their own; `stop` ends all three. */
export async function startAppOnMotoS3(): Promise<{ t: TestApp; moto: MotoS3; stop: () => Promise<void> }> {
  const moto = await startMotoS3();
  try {
    const env = await moto.createBucket();
    const t = await startTestApp({ env, workerEnv: env });
    return {
      t,
      moto,
      stop: async () => {
        await t.stop();
        await moto.stop();
      },
    };
  } catch (err) {
    await moto.stop();
    throw err;
  }
}
