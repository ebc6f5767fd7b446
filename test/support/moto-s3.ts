import { spawn } from "node:child_process";
import { access } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { createS3Client } from "../../src/storage/s3.ts";

const MOTO_SERVER = path.resolve(import.meta.dirname, "../../.tools/emulators/bin/moto_server");
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5000;

/** Credentials moto takes (it checks no signatures); the SDK's default chain reads them from the environment. */
export const MOTO_CREDENTIALS = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" };

export interface MotoS3 {
  /** `http://127.0.0.1:N`, the S3_ENDPOINT. */
  endpoint: string;
  /** Creates a bucket and returns the env that points the API and worker at it (STORAGE=s3, path style). */
  createBucket(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
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
    throw new Error(`moto is not installed (${MOTO_SERVER} is missing): run \`npm run setup:emulators\` (scripts/emulators-requirements.txt pins moto[server])`);
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(MOTO_SERVER, ["-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", keepTail);
  child.stderr.on("data", keepTail);
  let hasExited = false;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => (hasExited = true));
  // Should the test process end without calling stop(), moto must not outlive it.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    if (hasExited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const ready = await fetch(`${endpoint}/moto-api/`).then((r) => r.ok, () => false);
    if (ready) break;
    if (hasExited || Date.now() > deadline) {
      await stop();
      throw new Error(`moto did not start on port ${port} (${hasExited ? "it exited" : "timed out"}):\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  const connection = { endpoint, region: "us-east-1", forcePathStyle: true };
  return {
    endpoint,
    async createBucket() {
      const bucket = `videograph-${randomUUID().slice(0, 8)}`;
      Object.assign(process.env, MOTO_CREDENTIALS);
      const client = createS3Client(connection);
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      client.destroy();
      return { STORAGE: "s3", S3_BUCKET: bucket, S3_ENDPOINT: endpoint, S3_REGION: "us-east-1", S3_FORCE_PATH_STYLE: "true", ...MOTO_CREDENTIALS };
    },
    stop,
  };
}
