import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../src/free-port.ts";
import { inject } from "vitest";
import { sharedLocalServer, startDetachedServer, startLocalServer } from "./local-server.ts";

const execFileAsync = promisify(execFile);

const BUNDLED_SDK_ROOT = "/usr/lib/google-cloud-sdk";
const JAR_PATTERN = /^cloud-pubsub-emulator-.*\.jar$/;
const START_TIMEOUT_MS = 30_000;

export interface PubSubEmulator {
  /** `host:port`, the value for `PUBSUB_EMULATOR_HOST`. */
  host: string;
}

/** An emulator of its own (`startOwnPubSubEmulator`), which its starter stops. */
export interface OwnPubSubEmulator extends PubSubEmulator {
  stop(): Promise<void>;
}

/** Why `startPubSubEmulator` returned null, for the caller's skip message. */
export let pubSubEmulatorUnavailableReason = "";

async function findJarIn(sdkRoot: string): Promise<string | null> {
  const dir = path.join(sdkRoot, "platform", "pubsub-emulator", "lib");
  try {
    const jar = (await readdir(dir))
      .filter((name) => JAR_PATTERN.test(name))
      .sort()
      .at(-1);
    return jar ? path.join(dir, jar) : null;
  } catch {
    return null;
  }
}

async function findEmulatorJar(): Promise<string | null> {
  const bundled = await findJarIn(BUNDLED_SDK_ROOT);
  if (bundled) return bundled;
  try {
    const { stdout } = await execFileAsync("gcloud", ["info", "--format=value(installation.sdk_root)"], {
      timeout: 20_000,
    });
    return stdout.trim() ? await findJarIn(stdout.trim()) : null;
  } catch {
    return null;
  }
}

async function hasJava(): Promise<boolean> {
  try {
    await execFileAsync("java", ["-version"], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * The run's Pub/Sub emulator (the Google Cloud CLI component's jar, run with `java`): started by the
 * first test file that asks, on a free port, shared by every file after it (each uses a project of
 * its own, `GOOGLE_CLOUD_PROJECT`, so none sees another's topics), and stopped by the global setup's
 * teardown. Resolves null when the jar or Java is missing; `pubSubEmulatorUnavailableReason` then
 * says which, so callers can skip loudly.
 */
export async function startPubSubEmulator(): Promise<PubSubEmulator | null> {
  const runDir = inject("mediaFixturesDir");
  const shared = await sharedLocalServer(
    runDir,
    "pubsub-emulator",
    startEmulatorProcess(runDir),
    START_TIMEOUT_MS + 15_000,
  );
  if (shared.address === null) {
    pubSubEmulatorUnavailableReason = shared.reason ?? "it did not start";
    return null;
  }
  return { host: shared.address };
}

/** The emulator's jar, or why it cannot run here (no jar, no Java). */
async function emulatorJar(): Promise<{ jar: string } | { reason: string }> {
  const [jar, java] = await Promise.all([findEmulatorJar(), hasJava()]);
  if (jar && java) return { jar };
  return {
    reason: [
      jar
        ? ""
        : `no cloud-pubsub-emulator-*.jar under ${BUNDLED_SDK_ROOT} or gcloud's SDK root (gcloud components install ` +
          `pubsub-emulator)`,
      java ? "" : "no `java` on PATH (the emulator needs Java 17+)",
    ]
      .filter(Boolean)
      .join("; "),
  };
}

const emulatorArgs = (jar: string, port: number) => ["-jar", jar, "--host=127.0.0.1", `--port=${port}`];

function startEmulatorProcess(runDir: string) {
  return async (): Promise<{ address: string; pid: number } | { reason: string }> => {
    const found = await emulatorJar();
    if ("reason" in found) return found;
    const port = await freePort();
    const pid = await startDetachedServer({
      name: `Pub/Sub emulator on port ${port}`,
      command: "java",
      args: emulatorArgs(found.jar, port),
      logFile: path.join(runDir, "pubsub-emulator.log"),
      ready: () => acceptsConnections(port),
      startTimeoutMs: START_TIMEOUT_MS,
    });
    return { address: `127.0.0.1:${port}`, pid };
  };
}

/**
 * An emulator of the caller's own, stopped by `stop` or when this process exits: for programs
 * outside a test run (`npm run loadtest`). Resolves null when the jar or Java is missing, with the
 * reason in `pubSubEmulatorUnavailableReason`.
 */
export async function startOwnPubSubEmulator(): Promise<OwnPubSubEmulator | null> {
  const found = await emulatorJar();
  if ("reason" in found) {
    pubSubEmulatorUnavailableReason = found.reason;
    return null;
  }
  const port = await freePort();
  const { stop } = await startLocalServer({
    name: `Pub/Sub emulator on port ${port}`,
    command: "java",
    args: emulatorArgs(found.jar, port),
    ready: () => acceptsConnections(port),
    startTimeoutMs: START_TIMEOUT_MS,
    pollMs: 200,
    ownProcessGroup: true,
  });
  return { host: `127.0.0.1:${port}`, stop };
}
